# Where php-web-host.deploy deploys from. The revision is not set here: it
# comes with each push, from the reactor (reactor/code-deploy.sls), or by hand:
#   brinectl state apply -G roles:php-web-host php-web-host.deploy pillar='{"deploy": {"rev": "<sha>"}}'
deploy:
  repo: https://git.example.com/acme/app.git
  root: /srv/app
