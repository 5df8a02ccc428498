{% import_json './files/settings.json' as s %}
{%- import_text 'files/motd.txt' as motd %}
{{ s }}
{{ motd }}
