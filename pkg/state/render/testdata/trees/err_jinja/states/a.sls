ok:
  test.nop: []
{% for x in pillar['nope'] %}
{% endfor %}
