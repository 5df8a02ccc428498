{#- Ten states whose IDs are not in alphabetical order: they run in the
    order written (Salt's state_auto_order), except where order: or a
    requisite says otherwise. #}
include:
  - .base

zookeeper:
  cmd.run:
    - name: echo zookeeper

kafka:
  cmd.run:
    - name: echo kafka

postgres:
  cmd.run:
    - name: echo postgres

api:
  cmd.run:
    - name: echo api
    - require:
      - cmd: redis

mysql:
  cmd.run:
    - name: echo mysql

redis:
  cmd.run:
    - name: echo redis

nginx:
  cmd.run:
    - name: echo nginx

bootstrap:
  cmd.run:
    - name: echo bootstrap
    - order: first

cleanup:
  cmd.run:
    - name: echo cleanup
    - order: last

monitoring:
  cmd.run:
    - name: echo monitoring
    - order: 10

extend:
  kafka:
    cmd:
      - require:
        - cmd: zookeeper
