include:
  - .secrets
app:
  port: 80
