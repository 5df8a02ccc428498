motd:
  file.managed:
    - name: /etc/motd
    - source: salt://files/nope.j2
