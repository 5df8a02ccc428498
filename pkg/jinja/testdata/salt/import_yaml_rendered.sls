{% import_yaml 'files/defaults.yaml' as defaults %}
{{ defaults.mongodb.keys() | list }}
{{ defaults.mongodb.zeta }} {{ defaults.mongodb.mode }} {{ defaults.mongodb.enabled }} {{ defaults.mongodb.since }} {{ defaults.mongodb.members }}
