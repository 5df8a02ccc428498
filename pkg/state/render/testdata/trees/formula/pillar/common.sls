owner: ops
users:
  alice:
    uid: 1001
  bob:
    uid: 1002
