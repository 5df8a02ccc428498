{#-
  Deploys one commit of the application into its own release directory,
  switches the current symlink to it in one rename, reloads uWSGI and
  nginx gracefully, and keeps the newest releases.

  Pillar: deploy:repo (git URL), deploy:rev (the commit, from the push),
          deploy:root (default /srv/app; map.jinja's deploy_dir),
          php_web_host:keep_releases (default 5, current included).

  A checkout that fails (a revision that does not exist) stops here: the
  symlink requires it, so current stays on the release it was on, and
  the failed git.latest's comment says why.
#}
{%- from "php-web-host/map.jinja" import php_web_host as c with context %}
{%- set repo = salt['pillar.get']('deploy:repo') %}
{%- set rev = salt['pillar.get']('deploy:rev') | string %}
{%- if not repo or not rev or rev == 'None' %}
{{ raise('php-web-host.deploy needs pillar deploy:repo and deploy:rev') }}
{%- endif %}
{%- if '/' in rev or rev.startswith('.') or rev.startswith('-') %}
{{ raise('php-web-host.deploy: deploy:rev ' ~ (rev | json) ~ ' cannot name a release directory') }}
{%- endif %}
{%- set release = c.deploy_dir ~ '/releases/' ~ rev %}

include:
  - .packages

app-release:
  git.latest:
    - name: {{ repo | json }}
    - target: {{ release | json }}
    - rev: {{ rev | json }}
    - force_reset: True
    - require:
      - pkg: php-web-host-packages

{#- file.symlink makes the new link beside the old one and renames it
    over: a request sees the old release or the new one, never no link. #}
app-current:
  file.symlink:
    - name: {{ c.deploy_dir }}/current
    - target: {{ release | json }}
    - force: True
    - require:
      - git: app-release

{#- Graceful: uWSGI's master finishes the requests in flight and re-execs
    on the socket it keeps listening on (requests wait in the backlog);
    nginx starts new workers and retires the old ones. #}
nginx:
  service.running:
    - name: {{ c.nginx_service }}
    - reload: True
    - watch:
      - file: app-current

uwsgi:
  service.running:
    - name: {{ c.uwsgi_service }}
    - reload: True
    - watch:
      - file: app-current

{#- The deploy is done when the new release answers through nginx and
    uWSGI: a reaction whose release does not come up fails and says so,
    and the next queued deploy cannot send its reload while uWSGI is still
    reloading from this one (uWSGI drops a SIGHUP that arrives then).
    Everything from the push reaches the shell as environment, never as
    command text. #}
app-serving-release:
  cmd.run:
    - name: |
        want="rev=$(git -C "$RELEASE" rev-parse HEAD)" || exit 1
        for i in $(seq 100); do
          php -r 'exit(strpos((string)@file_get_contents($argv[1]), $argv[2]) === false ? 1 : 0);' -- "$URL" "$want" && exit 0
          sleep 0.1
        done
        echo "$URL does not serve $want after 10 s" >&2
        exit 1
    - env:
      - RELEASE: {{ release | json }}
      - URL: {{ ('http://127.0.0.1:' ~ c.listen ~ '/') | json }}
    - onchanges:
      - file: app-current
    - require:
      - service: nginx
      - service: uwsgi

{#- Keep the newest releases by mtime, never the live one, whatever its
    age (a rollback points current at an old directory). #}
app-prune-releases:
  cmd.run:
    - name: ls -1t | grep -vxF -- "$(basename "$(readlink ../current)")" | tail -n +{{ c.keep_releases | int }} | xargs -r rm -rf --
    - cwd: {{ c.deploy_dir }}/releases
    - onchanges:
      - file: app-current
    - require:
      - service: nginx
      - service: uwsgi
