{#-
  Deploys one commit of the application into its own release directory and
  switches the current symlink to it; nginx reloads and uwsgi restarts when
  the symlink moves.

  Pillar: deploy:repo (git URL), deploy:rev (commit sha),
          deploy:root (default /srv/app).
#}
{%- set repo = salt['pillar.get']('deploy:repo') %}
{%- set rev = salt['pillar.get']('deploy:rev') %}
{%- set root = salt['pillar.get']('deploy:root', '/srv/app') %}
{%- if not repo or not rev %}
{{ raise('php-web-host.deploy needs pillar deploy:repo and deploy:rev') }}
{%- endif %}
{%- set release = root ~ '/releases/' ~ rev %}

include:
  - .packages

app-release:
  git.latest:
    - name: {{ repo }}
    - target: {{ release }}
    - rev: {{ rev }}
    - force_reset: True
    - require:
      - pkg: php-web-host-packages

app-current:
  file.symlink:
    - name: {{ root }}/current
    - target: {{ release }}
    - force: True
    - require:
      - git: app-release

nginx:
  service.running:
    - enable: True
    - reload: True
    - require:
      - pkg: php-web-host-packages
    - watch:
      - file: {{ root }}/current

uwsgi:
  service.running:
    - enable: True
    - require:
      - pkg: php-web-host-packages
    - watch:
      - file: {{ root }}/current
