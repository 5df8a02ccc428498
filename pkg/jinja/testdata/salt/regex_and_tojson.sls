{{ 'abcd' | regex_search('^(.*)BC(.*)$', ignorecase=True) }}
{{ 'lets replace spaces' | regex_replace('\s+', '__') }}
{{ ['a', 'b', 'c', 'a', 'b'] | unique }}
{{ {'b': 1, 'a': [1, 2]} | json }}
{{ {'b': 1, 'a': [1, 2]} | tojson }}
{{ {'b': 1, 'a': 'x'} | yaml }}
