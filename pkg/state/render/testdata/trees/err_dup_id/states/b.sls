
other:
  test.nop: []
same:
  test.nop: []
