{% from "../map.jinja" import cfg %}
worker:
  cmd.run:
    - name: worker --user {{ cfg.user }} ({{ tpldir }} {{ slsdotpath }})
