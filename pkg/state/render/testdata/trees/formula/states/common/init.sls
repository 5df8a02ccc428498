include:
  - .users

base-packages:
  pkg.installed:
    - names:
      - curl
      - vim
      - git

/etc/motd:
  file.managed:
    - source: salt://common/files/motd.j2
    - template: jinja
    - context:
        owner: {{ pillar.get('owner', 'ops') }}
    - mode: 0644
    - order: last
