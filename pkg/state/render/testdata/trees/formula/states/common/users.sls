{%- for name, u in pillar.get('users', {}).items() %}
user-{{ name }}:
  user.present:
    - name: {{ name }}
    - uid: {{ u.uid }}
    - shell: {{ u.get('shell', '/bin/bash') }}
    - require:
      - base-packages
{%- endfor %}
