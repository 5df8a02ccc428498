{#- Highstate for web hosts: the packages only. Deploying is event-driven
    (reactor/code-deploy.sls applies php-web-host.deploy with the pushed
    commit); a highstate must not roll the app back to some fixed revision. #}
include:
  - .packages
