site-code:
  file.managed:
    - name: /srv/site/index.html
    - contents: hello from {{ grains['id'] }}
    - require:
      - sls: nginx

graceful-down:
  cmd.run:
    - name: nginx -s quit
    - prereq:
      - file: site-code

/tmp/site-marker:
  file.touch: []

site-users-ready:
  test.succeed_without_changes:
    - onfail:
      - sls: common.users
