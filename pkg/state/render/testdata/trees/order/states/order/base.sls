# Included first, so it runs before the including file's states.
{{ pillar['dir'] }}:
  file.directory:
    - mode: 0750
    - makedirs: True

motd:
  file.managed:
    - name: {{ pillar['dir'] }}/motd
    - mode: 0640
    - contents: hello
