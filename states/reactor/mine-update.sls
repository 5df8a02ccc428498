{#- A minion's mine data changed (event mine/<minion>/update, data.id is
    the minion): rebuild /etc/hosts from the mine on every minion. -#}
refresh_hosts:
  local.state.apply:
    - tgt: '*'
    - args:
      - mods: hosts
