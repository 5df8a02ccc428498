base:
  '*':
    - users
    - extra
