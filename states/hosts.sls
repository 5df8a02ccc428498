{#-
  /etc/hosts entries for every minion in this minion's environment.

  Needs the mine on all minions, e.g. in the minion config:
    mine_functions:
      network.ip_addrs: [eth0]
      network.get_hostname: []

  Every other minion is listed at its first eth0 address under its id and,
  when the mine has it, its hostname; this minion points at 127.0.0.1.
#}
{%- set env = grains['env'] %}
{%- set addrs = salt['mine.get']('env:' ~ env, 'network.ip_addrs', tgt_type='grain') %}
{%- set hostnames = salt['mine.get']('env:' ~ env, 'network.get_hostname', tgt_type='grain') %}

{%- for id, ips in addrs|dictsort %}
{%-   if id != grains['id'] and ips %}
{%-     set names = [id] %}
{%-     if hostnames.get(id) and hostnames[id] != id %}
{%-       do names.append(hostnames[id]) %}
{%-     endif %}

hosts-{{ id }}:
  host.present:
    - ip: {{ ips|first }}
    - clean: True
    - names: {{ names|json }}
{%-   endif %}
{%- endfor %}

{%- set self_names = [grains['id']] %}
{%- set self_hostname = hostnames.get(grains['id'], grains.get('host', '')) %}
{%- if self_hostname and self_hostname != grains['id'] %}
{%-   do self_names.append(self_hostname) %}
{%- endif %}

hosts-self:
  host.present:
    - ip: 127.0.0.1
    - names: {{ self_names|json }}
