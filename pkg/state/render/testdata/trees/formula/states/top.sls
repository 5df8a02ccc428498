base:
  '*':
    - common
  'roles:web':
    - match: grain
    - nginx
    - site
  'db*':
    - mongodb
