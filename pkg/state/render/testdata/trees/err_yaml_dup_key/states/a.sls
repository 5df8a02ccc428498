# two IDs with the same name in one file: Salt refuses this
web:
  pkg.installed: []

db:
  pkg.installed: []

{# a copy-paste that forgot to rename #}
web:
  service.running: []
