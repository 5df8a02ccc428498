web:
  service.running:
    - require:
      - pkg: nginx
