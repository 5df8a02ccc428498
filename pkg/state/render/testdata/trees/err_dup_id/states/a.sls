include:
  - b

same:
  test.nop: []
