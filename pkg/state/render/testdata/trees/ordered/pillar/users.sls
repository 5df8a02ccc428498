# Deliberately not alphabetical: states follow this order.
users:
  zoe: {uid: 1003}
  adam: {uid: 1001}
  mia: {uid: 1002}
vhosts:
  www.example.org: 8080
  api.example.org: 8081
