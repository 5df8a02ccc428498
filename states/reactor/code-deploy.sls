{#- Deploy a role when its GitHub repository is pushed to.

    GitHub posts to https://<master>:8443/hook/deploy/<role>, which the
    webhook turns into the event salt/netapi/hook/deploy/<role>. The role
    is the last part of the tag. Everything taken from the event goes
    through |tojson so that it stays one YAML string whatever it contains.
-#}
{%- set role = tag.split('/')[-1] %}
{%- set post = data.get('post', {}) %}
{%- if not salt['hook.verify_github'](data, 'github') %}
deploy_{{ role }}_bad_signature:
  runner.event.send:
    - tag: deploy/rejected
    - data:
        role: {{ role | tojson }}
        reason: bad signature
        remote_addr: {{ data.get('remote_addr', '') | tojson }}
{%- elif post.get('after') and post.get('after') != '0' * 40 and not post.get('deleted') %}
deploy_{{ role }}:
  local.state.apply:
    - tgt: {{ ('roles:' ~ role) | tojson }}
    - tgt_type: grain
    - args:
      - mods: {{ (role ~ '.deploy') | tojson }}
      - pillar:
          deploy:
            rev: {{ post['after'] | tojson }}
            repo: {{ post['repository']['clone_url'] | tojson }}
{%- endif %}
