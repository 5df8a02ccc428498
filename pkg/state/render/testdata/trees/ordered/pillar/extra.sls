# Merged later: bob is new and goes last, adam keeps his place.
users:
  bob: {uid: 1004}
  adam: {shell: /bin/zsh}
