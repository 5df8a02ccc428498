x:
  file.managed:
    - source: salt://../../etc/passwd
