package jinja

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFuncArguments(t *testing.T) {
	var gotArgs []any
	var gotKw map[string]any
	salt := map[string]any{
		"mine.get": Func(func(args []any, kwargs map[string]any) (any, error) {
			gotArgs, gotKw = args, kwargs
			return map[string]any{"db2": []any{"10.0.0.2"}, "db1": []any{"10.0.0.1"}}, nil
		}),
	}
	tests := []struct {
		name, src, out string
		args           []any
		kwargs         map[string]any
	}{
		{"positional and keyword", `{{ salt['mine.get']('roles:db', 'network.ip_addrs', tgt_type='grain')|length }}`, "2",
			[]any{"roles:db", "network.ip_addrs"}, map[string]any{"tgt_type": "grain"}},
		{"expr_form passes through", `{{ salt['mine.get']('*', 'f', expr_form='glob').keys()|list }}`, "['db1', 'db2']",
			[]any{"*", "f"}, map[string]any{"expr_form": "glob"}},
		{"structured arguments", `{% set x = salt['mine.get']({'a': [1, 2]}, [True, None], n=1.5) %}ok`, "ok",
			[]any{map[string]any{"a": []any{1, 2}}, []any{true, nil}}, map[string]any{"n": 1.5}},
		{"result is a dict with items", `{% for id, ips in salt['mine.get']('*', 'f').items() %}{{ id }}={{ ips[0] }} {% endfor %}`, "db1=10.0.0.1 db2=10.0.0.2 ",
			[]any{"*", "f"}, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Render("t", tt.src, map[string]any{"salt": salt})
			if err != nil {
				t.Fatal(err)
			}
			if out != tt.out {
				t.Errorf("out %q, want %q", out, tt.out)
			}
			if !reflect.DeepEqual(gotArgs, tt.args) || !reflect.DeepEqual(gotKw, tt.kwargs) {
				t.Errorf("called with %#v %#v, want %#v %#v", gotArgs, gotKw, tt.args, tt.kwargs)
			}
		})
	}
}

// A template that mutates pillar must not change the caller's data: the
// master renders many minions from one pillar cache.
func TestCallerDataIsNotMutated(t *testing.T) {
	pillar := map[string]any{"users": map[string]any{"a": 1}, "list": []any{1}}
	src := `{% do pillar['users'].update({'b': 2}) %}{% do pillar['list'].append(2) %}{{ pillar['users']|length }}{{ pillar['list']|length }}`
	out, err := Render("t", src, map[string]any{"pillar": pillar})
	if err != nil {
		t.Fatal(err)
	}
	if out != "22" {
		t.Fatalf("template did not see its own mutation: %q", out)
	}
	if len(pillar["users"].(map[string]any)) != 1 || len(pillar["list"].([]any)) != 1 {
		t.Errorf("caller's pillar was mutated: %v", pillar)
	}
}

func TestIncludeWithLoader(t *testing.T) {
	files := map[string]string{
		"map.jinja":     `{% import_yaml 'defaults.yaml' as defaults %}{% set mongodb = {'port': defaults.port, 'env': grains['env']} %}{% macro hp(h) %}{{ h }}:{{ mongodb.port }}{% endmacro %}`,
		"defaults.yaml": "port: {{ 27000 + 17 }}\n",
	}
	load := func(name string) (string, error) {
		src, ok := files[name]
		if !ok {
			return "", &Error{Template: name, Message: "no such file"}
		}
		return src, nil
	}
	out, err := RenderWith("init.sls", `{% from 'map.jinja' import mongodb, hp with context %}{% import 'map.jinja' as m %}port: {{ mongodb.port }} env: {{ mongodb.env }} {{ hp('db1') }} {{ m.mongodb.port }}`,
		map[string]any{"grains": map[string]any{"env": "prod"}}, load)
	if err != nil {
		t.Fatal(err)
	}
	if out != "port: 27017 env: prod db1:27017 27017" {
		t.Errorf("got %q", out)
	}
	_, err = Render("init.sls", `{% include 'x.sls' %}`, nil)
	if err == nil || !strings.Contains(err.Error(), "init.sls") {
		t.Errorf("include without a loader: %v", err)
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"{{ x }}", "{% for i in l %}{{ i }}{% endfor %}", "{% set ns = namespace(a=1) %}{% set ns.a = 2 %}{{ ns.a }}",
		"{% do l.append(l) %}{{ l }}{{ l|tojson }}{{ l|yaml }}", "{{ d.items()|list }}", "{{ 'a{0}'.format(1) }}",
		"{% if %}", "{{ }}", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}", "{{ d|json }}{{ d.update(l) }}",
		"{{ salt['f'](1, k=2) }}", "{% raw %}{{{% endraw %}", "{{ l.pop(5) }}{{ l.insert(-9, 1) }}", "{{ 1/0 }}",
		"{% load_yaml as y %}a: [1, {b: 0644}]{% endload %}{{ y }}", "{% set a, b = 1, 2 %}{{ '%s-%05.1f' % (a, b) }}",
		"{{ '{0[k]!r:>8}|{:,}'.format(d, 1234) }}", "{% macro m() %}{{ caller(1) }}{{ varargs }}{% endmacro %}{% call(x) m(2) %}{{ x }}{% endcall %}",
		"{{ [1, 2] >= [1] }}{{ (1,) + (2,) }}{{ {1: 2, True: 3} }}{{ 'a' if x }}{{ -7 // 2 }}{{ 2 ** 10 }}",
		"{{ dict(*[], **{'a': 1}) }}{{ 'a' 'b' }}{% set y = nope %}{{ y is defined }}{{ nope is none }}{{ 1 + 1 is even }}",
		"{% for a, b in [[1, 2]] %}{{ a }}{% endfor %}{% raw -%} x {%- endraw %}{{ d.items() }}{{ range(3) }}{{ 'x' is match('x', ignorecase=True) }}",
		"{# {% if %} $ #}{% raw %}{{ $x }}{% endraw %}{% filter upper %}x{% endfilter %}",
		"{% set s | upper %}x{% endset %}{{ s }}{{ 'a\\\\b\\'c' }}{{ d | yaml(False) }}{{ d | python }}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 2048 {
			return
		}
		vars := map[string]any{
			"x": "v", "l": []any{1, "a"}, "d": map[string]any{"k": []any{1}},
			"salt": map[string]any{"f": Func(func(a []any, kw map[string]any) (any, error) { return a, nil })},
		}
		var out string
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			out, err = Render("fuzz.sls", src, vars)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("render did not finish in 10s: %q", src)
		}
		if err != nil {
			var je *Error
			if !asError(err, &je) {
				t.Fatalf("error is not a *jinja.Error: %T %v", err, err)
			}
			if out != "" {
				t.Fatalf("output alongside an error")
			}
		}
	})
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}
