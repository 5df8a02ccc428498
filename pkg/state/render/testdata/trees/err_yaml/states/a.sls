ok:
  test.nop:
    - name: a
   - bad: indent
