{#- php-web-host: PHP under uWSGI behind nginx.

    Highstate builds the tier: packages, the nginx site, the uWSGI app and
    both services, each restarted or reloaded when its config changes.
    It never deploys: deploying is event-driven (reactor/code-deploy.sls
    applies php-web-host.deploy with the pushed commit), and a highstate
    must not roll the app back to some fixed revision. -#}
{%- from "php-web-host/map.jinja" import php_web_host as c with context %}
include:
  - .packages

php-web-host-nginx-site:
  file.managed:
    - name: {{ c.nginx_sites_available }}/{{ c.app }}.conf
    - source: salt://php-web-host/files/nginx-site.conf.jinja
    - template: jinja
    - mode: '0644'
    - require:
      - pkg: php-web-host-packages

php-web-host-nginx-site-enabled:
  file.symlink:
    - name: {{ c.nginx_sites_enabled }}/{{ c.app }}.conf
    - target: {{ c.nginx_sites_available }}/{{ c.app }}.conf
    - require:
      - file: php-web-host-nginx-site

{%- if c.remove_default_site %}

php-web-host-nginx-default-site:
  file.absent:
    - name: {{ c.nginx_sites_enabled }}/default
    - require:
      - pkg: php-web-host-packages
{%- endif %}

php-web-host-uwsgi-app:
  file.managed:
    - name: {{ c.uwsgi_apps_available }}/{{ c.app }}.ini
    - source: salt://php-web-host/files/uwsgi-app.ini.jinja
    - template: jinja
    - mode: '0644'
    - require:
      - pkg: php-web-host-packages

php-web-host-uwsgi-app-enabled:
  file.symlink:
    - name: {{ c.uwsgi_apps_enabled }}/{{ c.app }}.ini
    - target: {{ c.uwsgi_apps_available }}/{{ c.app }}.ini
    - require:
      - file: php-web-host-uwsgi-app

{#- uWSGI resolves php-docroot when it starts and will not start without
    it, so a host that has never had a deploy gets a placeholder release
    (a 503 page) for current to point at; the first deploy swaps it out.
    Hidden from the deploy's pruning (ls without -a), never overwritten
    once current exists. #}
php-web-host-placeholder:
  file.managed:
    - name: {{ c.deploy_dir }}/releases/.placeholder/index.php
    - contents: |
        <?php http_response_code(503); ?>
        brine-demo: no release deployed yet
    - makedirs: True
    - mode: '0644'

php-web-host-current:
  cmd.run:
    - name: ln -s releases/.placeholder current
    - cwd: {{ c.deploy_dir }}
    - creates: {{ c.deploy_dir }}/current
    - require:
      - file: php-web-host-placeholder

nginx:
  service.running:
    - name: {{ c.nginx_service }}
    - enable: True
    - reload: True
    - watch:
      - file: php-web-host-nginx-site
      - file: php-web-host-nginx-site-enabled
{%- if c.remove_default_site %}
      - file: php-web-host-nginx-default-site
{%- endif %}

{#- A changed ini restarts uWSGI (socket or plugin may have changed);
    deploys reload it gracefully instead (deploy.sls).
    No enable here: Debian's package enables uwsgi itself, and under
    sysvinit its script answers "status" without an app name with exit 0
    whether or not anything runs, so service.running finds it "already
    running"; a state that changes nothing itself is what lets the watch
    on the app's ini (re)start it. #}
uwsgi:
  service.running:
    - name: {{ c.uwsgi_service }}
    - require:
      - cmd: php-web-host-current
    - watch:
      - file: php-web-host-uwsgi-app
      - file: php-web-host-uwsgi-app-enabled
