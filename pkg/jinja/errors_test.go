package jinja

import (
	"errors"
	"strings"
	"testing"
)

func TestErrors(t *testing.T) {
	salt := map[string]any{
		"boom": Func(func(args []any, kwargs map[string]any) (any, error) {
			return nil, errors.New("mine is unreachable")
		}),
	}
	tests := []struct {
		name, src        string
		line, col        int
		wantMsg, wantSrc string
	}{
		{"undefined name", "a: 1\nb: {{ nope }}\n", 2, 4, "'nope' is undefined", "b: {{ nope }}"},
		{"undefined attribute", "x:\n  - {{ pillar.missing }}\n", 2, 5, "'missing' is undefined", "  - {{ pillar.missing }}"},
		{"undefined item", "{{ pillar['deploy']['nope'] }}", 1, 1, "'nope' is undefined", "{{ pillar['deploy']['nope'] }}"},
		{"unclosed expression", "ok\n{% if True %}\n  {{ x }\n{% endif %}\n", 3, 9, "syntax error", "  {{ x }"},
		{"bad expression", "{% for a in [1] %}\n  {{ 1 + }}\n{% endfor %}", 2, 10, "syntax error", "  {{ 1 + }}"},
		{"missing endfor", "{% for a in [1] %}\nx\n", 2, 0, "expected tag else or endfor", ""},
		{"unknown filter", "a\n\n{{ 1|nosuchfilter }}", 3, 1, "filter 'nosuchfilter' not found", "{{ 1|nosuchfilter }}"},
		{"function error", "{% set x = salt['boom']('a', tgt_type='grain') %}", 1, 8, "boom: mine is unreachable", ""},
		{"raise", "{% if True %}\n{{ raise('no deploy:rev in pillar') }}\n{% endif %}", 2, 1, "no deploy:rev in pillar", "{{ raise('no deploy:rev in pillar') }}"},
		{"stray bang", "a\n{% if !x %}{% endif %}", 2, 7, `unexpected character '!'`, "{% if !x %}{% endif %}"},
		{"non-ascii in a tag (gonja's lexer hangs on it)", "{%\x040.\u4534 %}", 1, 3, "unexpected character", ""},
		{"runaway macro recursion", "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}\n{{ m(0) }}", 1, 0, "recursion deeper than 64", ""},
		{"huge range", "{% for i in range(1000000000) %}{% endfor %}", 1, 0, "more than 100000 items", ""},
		{"error inside nested loop", "{% for a in [1] %}\n{% for b in [2] %}\n  {% set y = nope.x %}\n{% endfor %}\n{% endfor %}", 3, 10, "'nope' is undefined", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render("web/init.sls", tt.src, map[string]any{"salt": salt, "pillar": map[string]any{"deploy": map[string]any{}}})
			if err == nil {
				t.Fatal("no error")
			}
			var je *Error
			if !errors.As(err, &je) {
				t.Fatalf("not a *jinja.Error: %T %v", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "web/init.sls") {
				t.Errorf("error does not name the template: %s", msg)
			}
			if je.Line != tt.line || (tt.col != 0 && je.Column != tt.col) {
				t.Errorf("position %d:%d, want %d:%d\n%s", je.Line, je.Column, tt.line, tt.col, msg)
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMsg)
			}
			if tt.wantSrc != "" && !strings.Contains(msg, "| "+tt.wantSrc) {
				t.Errorf("message does not show the offending line %q:\n%s", tt.wantSrc, msg)
			}
		})
	}
}

// TestErrorsInImportedTemplates: a failure inside an imported macro, an
// included file or an imported module names that file, line and column,
// then the template that pulled it in.
func TestErrorsInImportedTemplates(t *testing.T) {
	files := map[string]string{
		"lib/m.jinja":   "{% macro bad(x) %}\n  {{ x.nope }}\n{% endmacro %}",
		"lib/inc.jinja": "ok\n{{ 1 + 'a' }}",
		"lib/map.jinja": "{% set a = {} %}\n{% set b = a.missing.x %}",
	}
	res := func(from, name string) (string, string, error) {
		full := RelativeName(from, name)
		src, ok := files[full]
		if !ok {
			return "", "", errors.New("no such template")
		}
		return full, src, nil
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"macro", "x\n{% from 'lib/m.jinja' import bad %}\n{{ bad({}) }}", []string{"lib/m.jinja:2:3: 'nope' is undefined (in x.nope)", "2 |   {{ x.nope }}", "imported or included by lib/top.sls:3"}},
		{"include", "{% include './inc.jinja' %}", []string{"lib/inc.jinja:2:1: TypeError: unsupported operand type(s) for +: 'int' and 'str'", "imported or included by lib/top.sls:1"}},
		{"module", "\n{% import './map.jinja' as m %}", []string{"lib/map.jinja:2:", "'missing' is undefined", "imported or included by lib/top.sls:2"}},
		{"missing file", "{% import './nope.jinja' as m %}", []string{"lib/top.sls:1:", "lib/nope.jinja", "no such template"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RenderOptions("lib/top.sls", tt.src, nil, Options{Resolve: res})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}
