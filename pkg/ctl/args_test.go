package ctl

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

func TestParseValue(t *testing.T) {
	bomb := "[" + strings.Repeat("[", 0) + "&a [x,x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], *d]"
	tests := []struct {
		in   string
		want any
	}{
		{"hello", "hello"},
		{"hello world", "hello world"},
		{"1", int64(1)},
		{"-5", int64(-5)},
		{"1.5", 1.5},
		{"1e3", 1000.0},
		{"true", true},
		{"True", true},
		{"FALSE", false},
		{"yes", true},
		{"off", false},
		{"'yes'", "yes"},
		{"None", nil},
		{"null", nil},
		{"~", nil},
		{"[1, a, true]", []any{int64(1), "a", true}},
		{`{"a": 1, "b": {"c": [1, 2]}}`, map[string]any{"a": int64(1), "b": map[string]any{"c": []any{int64(1), int64(2)}}}},
		{"{a: [1, {b: null}]}", map[string]any{"a": []any{int64(1), map[string]any{"b": nil}}}},
		{"{1: x, true: y}", map[string]any{"1": "x", "true": "y"}},
		{"a: b", "a: b"},
		{"- a", "- a"},
		{"1_000", "1_000"},
		{"#x", "#x"},
		{"a #b", "a #b"},
		{"[1] #c", []any{int64(1)}},
		{"!", "!"},
		{"|", "|"},
		{"", ""},
		{"  ", "  "},
		{"0644", int64(644)},
		{"-007", int64(-7)},
		{"00", int64(0)},
		{"0x1f", int64(31)},
		{"[0644]", []any{int64(644)}},
		{"2024-01-01", "2024-01-01"},
		{"20260101120000000001", "20260101120000000001"},
		{"9007199254740993", "9007199254740993"},
		{".inf", ".inf"},
		{"'quoted'", "quoted"},
		{`"a=b"`, "a=b"},
		{"!!binary aGk=", "!!binary aGk="},
		{"*undefined", "*undefined"},
		{"{a: 1", "{a: 1"},
		{"{<<: {a: 1}}", "{<<: {a: 1}}"},
		{"/etc/hosts", "/etc/hosts"},
		{"salt://files/motd", "salt://files/motd"},
		{bomb, bomb},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := ParseValue(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseValue(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if _, err := structpb.NewValue(got); err != nil {
				t.Errorf("ParseValue(%q) is not wire-encodable: %v", tt.in, err)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name       string
		in         []string
		wantArgs   []any
		wantKwargs map[string]any
		wantErr    string
	}{
		{"empty", nil, []any{}, map[string]any{}, ""},
		{"positional and kwargs", []string{"nginx", "refresh=True", "version=1.2", "2"},
			[]any{"nginx", int64(2)}, map[string]any{"refresh": true, "version": 1.2}, ""},
		{"pillar json", []string{`pillar={"port": 8080, "tls": {"on": true}}`},
			[]any{}, map[string]any{"pillar": map[string]any{"port": int64(8080), "tls": map[string]any{"on": true}}}, ""},
		{"not a kwarg: space in key", []string{"echo a=b"}, []any{"echo a=b"}, map[string]any{}, ""},
		{"not a kwarg: ==", []string{"a==b"}, []any{"a==b"}, map[string]any{}, ""},
		{"not a kwarg: digit first", []string{"1x=2"}, []any{"1x=2"}, map[string]any{}, ""},
		{"not a kwarg: leading =", []string{"=x"}, []any{"=x"}, map[string]any{}, ""},
		{"kwarg with dot and dash", []string{"_a.b-c=x"}, []any{}, map[string]any{"_a.b-c": "x"}, ""},
		{"unicode key", []string{"clé=v"}, []any{}, map[string]any{"clé": "v"}, ""},
		{"value with =", []string{"cmd=a=b"}, []any{}, map[string]any{"cmd": "a=b"}, ""},
		{"empty value", []string{"x="}, []any{}, map[string]any{"x": ""}, ""},
		{"duplicate kwarg", []string{"x=1", "x=2"}, nil, nil, `keyword argument "x" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, kwargs, err := ParseArgs(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(args, tt.wantArgs) || !reflect.DeepEqual(kwargs, tt.wantKwargs) {
				t.Errorf("got %#v %#v, want %#v %#v", args, kwargs, tt.wantArgs, tt.wantKwargs)
			}
			if _, _, err := toWire(args, kwargs); err != nil {
				t.Errorf("toWire: %v", err)
			}
		})
	}
}

func TestParseEventData(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]any
		wantErr string
	}{
		{`{"a": 1}`, map[string]any{"a": 1.0}, ""},
		{`{}`, map[string]any{}, ""},
		{`[1]`, nil, "must be a JSON object"},
		{`null`, nil, "not null"},
		{`{"a": 1} {"b": 2}`, nil, "trailing text"},
		{`{"a": `, nil, "must be a JSON object"},
	}
	for _, tt := range tests {
		got, err := ParseEventData(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseEventData(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseEventData(%q) = %#v, %v", tt.in, got, err)
		}
	}
}

// FuzzParseArgs: any argument parses without panicking into something the
// wire can carry, and a value that stays a string is the input unchanged
// unless YAML quoting or block syntax was involved.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"hello", "x=1", `pillar={"a": [1, 2]}`, "0644", "[a, {b: c}]", "#", "a: b", "yes", "&a [*a]", "1_0", "x==y", "!!str 1", "'q'", "|\n  block"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, kwargs, err := ParseArgs([]string{s})
		if !utf8.ValidString(s) {
			if err == nil {
				t.Fatalf("ParseArgs(%q) accepted invalid UTF-8", s)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseArgs(%q): %v", s, err)
		}
		if _, _, err := toWire(args, kwargs); err != nil {
			t.Fatalf("ParseArgs(%q) gave unencodable %#v %#v: %v", s, args, kwargs, err)
		}
		if len(args)+len(kwargs) != 1 {
			t.Fatalf("ParseArgs(%q) split one argument into %d", s, len(args)+len(kwargs))
		}
		// YAML (and so Salt) trims a plain scalar; "---" and "..." are
		// document markers.
		plain := !strings.ContainsAny(s, "'\"|>!&*%@`\\\n\r\t{[") &&
			!strings.HasPrefix(strings.TrimSpace(s), "---") && !strings.HasPrefix(strings.TrimSpace(s), "...")
		if got, ok := ParseValue(s).(string); ok && plain && got != s && got != strings.TrimSpace(s) {
			t.Fatalf("ParseValue(%q) changed a plain string into %q", s, got)
		}
	})
}
