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
    deploys reload it gracefully instead (deploy.sls). #}
uwsgi:
  service.running:
    - name: {{ c.uwsgi_service }}
    - enable: True
    - watch:
      - file: php-web-host-uwsgi-app
      - file: php-web-host-uwsgi-app-enabled
