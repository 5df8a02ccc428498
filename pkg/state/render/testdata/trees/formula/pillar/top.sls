base:
  '*':
    - common
  'web*':
    - web
  'db*':
    - secrets
