# php-web-host settings; every key is optional (defaults in
# states/php-web-host/map.jinja). OS-specific names can be corrected with
# php_web_host:lookup (e.g. uwsgi_run_dir).
php_web_host:
  app: brine-demo
  processes: 2
  listen: 80
  keep_releases: 5
