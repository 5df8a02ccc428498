package render

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// Each plain scalar must come out as PyYAML with Salt's loader reads it
// (python3 -c 'import yaml; print(repr(yaml.safe_load("k: <v>")["k"]))',
// then Salt's leading-zero rule).
func TestYAMLScalarsAsSalt(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"0644", 644},      // Salt strips the zero; file modes read the digits as octal
		{"0755", 755},      // idem
		{"00", 0},          // all zeros
		{"0", 0},           // zero
		{"-0644", -420},    // Salt only strips when the first character is 0
		{"0o644", "0o644"}, // not an integer in YAML 1.1
		{"0x1F", 31},
		{"0b101", 5},
		{"1_000", 1000},
		{"08", "08"}, // neither octal nor decimal in YAML 1.1
		{"1:30", 90}, // sexagesimal
		{"190:20:30", 685230},
		{"1.5", 1.5},
		{"1.", 1.0},
		{"1e3", "1e3"}, // YAML 1.1 floats need a dot
		{"1.0e+3", 1000.0},
		{".5", 0.5},
		{"1:30.5", 90.5},
		{"yes", true}, {"Yes", true}, {"YES", true}, {"on", true}, {"On", true}, {"true", true}, {"True", true},
		{"no", false}, {"NO", false}, {"off", false}, {"Off", false}, {"false", false}, {"FALSE", false},
		{"y", "y"}, {"n", "n"}, {"yEs", "yEs"},
		{"~", nil}, {"null", nil}, {"", nil}, {"Null", nil},
		{"2024-01-31", "2024-01-31"}, // timestamps stay strings
		{"2024-01-31 10:00:00", "2024-01-31 10:00:00"},
		{"2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"},
		{"'0644'", "0644"}, {`"yes"`, "yes"}, {"!!str 0644", "0644"}, {"!!str yes", "yes"},
		{"!!int 12", 12}, {"!!float 1", 1.0},
		{"|\n    0644", "0644\n"},
		{"12345678901234567890", 1.2345678901234567e19},
		{"web01", "web01"},
		{"10.0.0.1", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := parseYAML("t.sls", []byte("k: "+tt.in+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := v.(*omap).get("k")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %#v (%T), want %#v (%T)", tt.in, got, got, tt.want, tt.want)
			}
		})
	}
	v, err := parseYAML("t.sls", []byte("k: .nan\n"))
	if f, _ := v.(*omap).vals["k"].(float64); err != nil || !math.IsNaN(f) {
		t.Errorf(".nan: %v %v", v, err)
	}
}

func TestYAMLKeysAndOrder(t *testing.T) {
	src := "zeta: 1\nalpha: 2\non: 3\n80: 4\nmid: 5\n~: 6\n"
	v, err := parseYAML("t.sls", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"zeta", "alpha", "True", "80", "mid", "None"}
	if got := v.(*omap).Keys(); !reflect.DeepEqual(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

func TestYAMLMergeKeys(t *testing.T) {
	tests := []struct {
		name, src string
		want      map[string]any
		err       string
	}{
		{"own key overrides merged", "b: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n", map[string]any{"x": 3, "y": 2}, ""},
		{"merge list, first wins", "a: &a {x: 1}\nb: &b {x: 2, z: 9}\nd:\n  <<: [*a, *b]\n", map[string]any{"x": 1, "z": 9}, ""},
		{"own key twice is a conflict", "b: &b {x: 1}\nd:\n  <<: *b\n  y: 1\n  y: 2\n", nil, "conflicting ID 'y' (first defined at line 4)"},
		{"merge of a scalar", "d:\n  <<: 3\n", nil, "a << merge takes a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseYAML("t.sls", []byte(tt.src))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, _ := v.(*omap).get("d")
			if got := plain(d); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzParseYAML: any input either decodes or fails with an error naming
// the file; keys never repeat and plain() never panics.
func FuzzParseYAML(f *testing.F) {
	for _, s := range []string{
		"k: 0644\n", "a: {b: [1, 2, {c: yes}]}\n", "x: &x {a: 1}\ny:\n  <<: *x\n  a: 2\n",
		"- 1:30\n- 0b11\n- 0x_1\n- 0_7\n- 1.0e+3\n", "a: 1\na: 2\n", "? [1]\n: x\n", "k: !!binary aGk=\n",
		"k: 2024-01-01\n", "k: -0_\n", "k: +0b\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		v, err := parseYAML("fuzz.sls", []byte(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.sls") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		checkOmap(t, v)
		_ = plain(v)
	})
}

func checkOmap(t *testing.T, v any) {
	switch x := v.(type) {
	case *omap:
		if len(x.keys) != len(x.vals) {
			t.Fatalf("omap has %d keys and %d values", len(x.keys), len(x.vals))
		}
		for _, k := range x.keys {
			checkOmap(t, x.vals[k])
		}
	case []any:
		for _, item := range x {
			checkOmap(t, item)
		}
	}
}
