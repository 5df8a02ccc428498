{% from "./map.jinja" import cfg %}
include:
  - .sub.worker

app:
  cmd.run:
    - name: run --user {{ cfg.user }} --port {{ cfg.port }}
    {# with trim_blocks and lstrip_blocks (jinja_sls_env) these block
       lines leave nothing behind, so the list stays a list #}
    {% if cfg.port > 8000 %}
    - env:
      - PORT: "{{ cfg.port }}"
    {% endif %}

app-users:
  file.managed:
    - name: /etc/app/users
    - contents: |
        {% for u in ['alice', 'bob'] %}
        {{ u }}
        {% endfor %}
