x:
  file.managed:
    - name: /a
      mode: 644
