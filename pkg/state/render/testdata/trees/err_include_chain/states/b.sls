include:
  - .c

b:
  test.nop: []
