{#-
  Replica set configuration, applied on the minion with the mongo_primary
  role. Members are every minion with the mongodb_server role, from the
  mine (network.get_hostname), ordered by minion id and numbered from 0.
#}
{%- set port = salt['pillar.get']('mongodb:port', 27017) %}
{%- set hostnames = salt['mine.get']('roles:mongodb_server', 'network.get_hostname', tgt_type='grain') %}
{%- set ns = namespace(members=[]) %}
{%- for id in hostnames.keys()|sort %}
{%-   do ns.members.append({'_id': loop.index0, 'host': hostnames[id] ~ ':' ~ port}) %}
{%- endfor %}

{%- if ns.members %}
mongodb-replset:
  mongodb.replset:
    - name: {{ salt['pillar.get']('mongodb:replset', 'rs0') }}
    - members: {{ ns.members|json }}
{%- endif %}
