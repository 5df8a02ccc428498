app:
  password: {{ vault['app'] }}
