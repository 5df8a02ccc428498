php-web-host-packages:
  pkg.installed:
    - pkgs:
      - nginx
      - uwsgi
      - uwsgi-plugin-php
      - git
