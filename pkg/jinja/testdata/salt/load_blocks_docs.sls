{#- Salt's documentation of load_yaml / load_json (jinja reference) -#}
{%- set yaml_src = "{foo: it works}"|load_yaml %}
{%- set json_src = '{"bar": "for real"}'|load_json %}
Dude, {{ yaml_src.foo }} {{ json_src.bar }}!
{% load_yaml as yaml_src %}
    foo: it works
{% endload %}
{%- load_json as json_src %}
    {
        "bar": "for real"
    }
{% endload %}
Dude, {{ yaml_src.foo }} {{ json_src.bar }}!
