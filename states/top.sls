# State top file: which SLS each minion gets (state.apply with no mods).
base:
  '*':
    - hosts
  'roles:mongo_primary':
    - match: grain
    - mongodb.replset
  'roles:php-web-host':
    - match: grain
    - php-web-host
