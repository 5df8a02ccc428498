c:
  cmd.run:
    - name: echo {{ port }}
