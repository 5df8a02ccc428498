{%- for name, u in pillar['users'].items() %}
user-{{ name }}:
  cmd.run:
    - name: useradd -u {{ u.uid }} {{ name }}{% if u.shell is defined %} -s {{ u.shell }}{% endif %}
{%- endfor %}
{%- for host, port in salt['pillar.get']('vhosts').items() %}
vhost-{{ host }}:
  cmd.run:
    - name: echo {{ host }}:{{ port }}
{%- endfor %}
keys:
  cmd.run:
    - name: echo {{ pillar['users']|list|join(',') }} {{ pillar.users.keys()|list }}

lookups:
  cmd.run:
    {#- the dict method is a plain key lookup; salt['pillar.get'] walks the path #}
    - name: echo {{ pillar.get('users:zoe', 'no-such-key') }} {{ salt['pillar.get']('users:zoe:uid') }}
