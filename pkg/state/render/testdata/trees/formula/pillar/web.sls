#!yaml
owner: webteam
users:
  bob:
    shell: /bin/zsh
