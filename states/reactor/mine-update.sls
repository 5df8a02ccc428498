{#- A minion's mine data changed (event mine/<minion>/update, data.functions
    lists what changed): rebuild /etc/hosts from the mine on every minion. -#}
refresh_hosts:
  local.state.apply:
    - tgt: '*'
    - args:
      - mods: hosts
