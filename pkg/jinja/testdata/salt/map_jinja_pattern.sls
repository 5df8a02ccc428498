{#- the map.jinja pattern of the saltstack-formulas -#}
{%- from './files/map.jinja' import mongodb with context %}
pkg: {{ mongodb.pkg }}
service: {{ mongodb.service }}
port: {{ mongodb.port }}
members: {{ mongodb.members | join(',') }}
