# What php-web-host.deploy deploys. Override per run:
#   brinectl state.apply php-web-host.deploy pillar='{"deploy": {"rev": "<sha>"}}'
deploy:
  repo: https://git.example.com/acme/app.git
  rev: 3f1c2a9d8e7b6a5c4d3e2f1a0b9c8d7e6f5a4b3c
  root: /srv/app
