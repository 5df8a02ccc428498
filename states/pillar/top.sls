# Pillar top file (point pillar_roots here, e.g. {base: [/srv/brine/states/pillar]}).
base:
  'roles:php-web-host':
    - match: grain
    - deploy
    - php-web-host
  'roles:mongo*':
    - match: grain
    - mongodb
