package saltyaml

import (
	"reflect"
	"strings"
	"testing"
)

// What formulas' defaults.yaml files contain must read as Salt reads it:
// map.jinja pastes these values into SLS text.
func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name, src string
		want      any
		err       string
	}{
		{"file mode keeps its digits", "mode: 0644\n", map[string]any{"mode": 644}, ""},
		{"YAML 1.1 booleans", "a: yes\nb: off\nc: 'on'\n", map[string]any{"a": true, "b": false, "c": "on"}, ""},
		{"boolean and null keys", "on: 1\n~: 2\n", map[string]any{"True": 1, "None": 2}, ""},
		{"timestamps stay strings", "d: 2024-05-01\n", map[string]any{"d": "2024-05-01"}, ""},
		{"nested and lists", "a:\n  - 1:30\n  - {b: 1.5}\n", map[string]any{"a": []any{90, map[string]any{"b": 1.5}}}, ""},
		{"merge then override", "x: &x {a: 1, b: 2}\ny: {<<: *x, a: 3}\n", map[string]any{"x": map[string]any{"a": 1, "b": 2}, "y": map[string]any{"a": 3, "b": 2}}, ""},
		{"empty document", "", nil, ""},
		{"repeated key", "a: 1\nb: 2\na: 3\n", nil, "line 3 column 1: conflicting ID 'a' (first defined at line 1)"},
		{"syntax error", "a: [1\n", nil, "did not find expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unmarshal([]byte(tt.src))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{"mode: 0644\n", "a: &a [*a]\n", "x: &x {a: 1}\ny: {<<: [*x, *x]}\n", "- 0b_\n- -0_\n- 1:60\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		_, _ = Unmarshal([]byte(src))
	})
}

type orderedMap struct {
	keys []string
	vals map[string]any
}

func (m *orderedMap) Set(k string, v any) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// A template engine gets mappings in the order the file wrote them,
// merged keys where the merge put them.
func TestUnmarshalOrdered(t *testing.T) {
	src := "base: &b {zz: 1, aa: 2}\nsvc:\n  zeta: 0644\n  <<: *b\n  alpha: [{y: 1, x: 2}]\n  aa: 3\n"
	v, err := UnmarshalOrdered([]byte(src), func() Mapping { return &orderedMap{vals: map[string]any{}} })
	if err != nil {
		t.Fatal(err)
	}
	top := v.(*orderedMap)
	svc := top.vals["svc"].(*orderedMap)
	if got, want := svc.keys, []string{"zeta", "zz", "aa", "alpha"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	if svc.vals["zeta"] != 644 || svc.vals["aa"] != 3 {
		t.Errorf("values %v", svc.vals)
	}
	inner := svc.vals["alpha"].([]any)[0].(*orderedMap)
	if got, want := inner.keys, []string{"y", "x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("nested keys %v, want %v", got, want)
	}
}

// Keys print as Python's str() of the key PyYAML built.
func TestKeyString(t *testing.T) {
	tests := []struct {
		key  any
		want string
	}{
		{nil, "None"}, {true, "True"}, {false, "False"}, {80, "80"}, {"x", "x"},
		{1.0, "1.0"}, {0.5, "0.5"}, {1e16, "1e+16"}, {1.5e-5, "1.5e-05"}, {-2.25, "-2.25"},
	}
	for _, tt := range tests {
		if got := KeyString(tt.key); got != tt.want {
			t.Errorf("KeyString(%#v) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
