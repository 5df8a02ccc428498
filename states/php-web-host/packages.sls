{#- The web tier's packages (nginx, uWSGI with its PHP plugin, php-cli,
    and git for the deploy), named per OS family by map.jinja. #}
{%- from "php-web-host/map.jinja" import php_web_host with context %}
php-web-host-packages:
  pkg.installed:
    - pkgs: {{ php_web_host.pkgs | json }}
