mongodb:
  lookup:
    pkg: mongodb-org-7.0
  port: 27018
  options:
    journal: false
