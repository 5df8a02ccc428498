{% from "app/map.jinja" import app with context %}
app:
  pkg.installed:
    - name: {{ app.pkg }}
