include:
  - .packages
  - ..plain

{% set root = '/srv/app' %}
app-dirs:
  file.directory:
    - names:
      - {{ root }}
      - {{ root }}/releases:
        - mode: 0750
      - {{ root }}/shared:
        - user: www-data
        - mode: 0755
    - makedirs: True
    - require:
      - pkg: app-packages

app-restart:
  cmd.wait:
    - name: systemctl restart app
    - watch:
      - file: {{ root }}/shared
