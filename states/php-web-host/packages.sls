{#- The list comes from pillar php_web_host:packages when set, so hosts
    that get nginx/uwsgi another way (or offline test hosts) can narrow it. #}
php-web-host-packages:
  pkg.installed:
    - pkgs: {{ salt['pillar.get']('php_web_host:packages', ['nginx', 'uwsgi', 'uwsgi-plugin-php', 'git']) | json }}
