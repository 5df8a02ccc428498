include:
  - common

extend:
  /etc/motd:
    file:
      - mode: '0600'
      - require:
        - pkg: nginx

nginx:
  pkg.installed: []
  service.running:
    - enable: True
    - reload: True
    - watch:
      - file: nginx-conf
    - require:
      - pkg: nginx

nginx-conf:
  file:
    - managed
    - name: /etc/nginx/nginx.conf
    - contents: |
        worker_processes {{ grains['num_cpus'] }};
    - watch_in:
      - cmd: nginx-test

nginx-test:
  cmd.run:
    - name: nginx -t
    - onchanges:
      - file: /etc/nginx/nginx.conf
    - failhard: True

first-thing:
  cmd.run:
    - name: echo first
    - order: first
