#!yaml
# {{ not rendered }}: plain YAML, no Jinja
plain-state: test.nop
yes-is-bool:
  test.configurable_test_state:
    - changes: yes
    - result: on
    - comment: 'yes'
