{%- from tpldir ~ "/map.jinja" import mongodb with context %}

mongodb-pkg:
  pkg.installed:
    - name: {{ mongodb.pkg }}
