one:
  test.nop:
    - require:
      - two
two:
  test.nop:
    - watch:
      - test: three
three:
  test.nop:
    - require:
      - one
