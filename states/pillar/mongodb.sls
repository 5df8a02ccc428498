mongodb:
  replset: rs0
  port: 27017
