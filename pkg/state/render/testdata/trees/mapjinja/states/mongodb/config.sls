{%- from tpldir ~ "/map.jinja" import mongodb with context %}
include:
  - .install

mongodb-config:
  file.managed:
    - name: {{ mongodb.config }}
    - mode: {{ mongodb.mode }}
    - contents: |
        # {{ tplfile }} ({{ sls }}, {{ slsdotpath }})
        net:
          port: {{ mongodb.port }}
          bindIp: {{ mongodb.bind_ip }}
        storage:
          engine: {{ mongodb.options.engine }}
          journal: {{ mongodb.options.journal }}
    - require:
      - pkg: mongodb-pkg

mongodb-service:
  service.running:
    - name: {{ mongodb.service }}
    - enable: True
    - watch:
      - file: mongodb-config
