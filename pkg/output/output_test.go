package output

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func loadJSON(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func TestNestedGolden(t *testing.T) {
	shapes := loadJSON(t, "nested_shapes.json")
	tests := []struct {
		name   string
		v      any
		indent int
		opts   Options
	}{
		{"nested_shapes", shapes, 0, Options{}},
		{"nested_shapes_color", shapes, 0, Options{Color: true}},
		{"nested_failed_color", map[string]any{"web1": []any{"a", map[string]any{"k": "v"}}}, 0, Options{Color: true, Retcode: 1}},
		{"nested_ordered", OrderedMap{{"zeta", []any{"/srv/reactor/z.sls"}}, {"alpha", map[string]any{"b": 1.5, "a": -3.0}}}, 0, Options{}},
		{"nested_indented_scalar", "hello\nworld", 6, Options{}},
		{"nested_typed_go_values", struct {
			ID    string   `json:"id"`
			Roles []string `json:"roles"`
		}{"web1", []string{"web"}}, 0, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.name, Nested(tt.v, tt.indent, tt.opts)+"\n")
		})
	}
}

func TestNestedExactSaltShapes(t *testing.T) {
	// A few shapes pinned inline so the Salt layout is visible in the test.
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"ping", map[string]any{"web1": true}, "web1:\n    True"},
		{"dict", map[string]any{"web1": map[string]any{"a": 1.0, "b": map[string]any{"c": "x"}}},
			"web1:\n    ----------\n    a:\n        1\n    b:\n        ----------\n        c:\n            x"},
		{"list", map[string]any{"web1": []any{"a", "b"}}, "web1:\n    - a\n    - b"},
		{"list of maps", []any{map[string]any{"k": "v"}}, "|_\n  ----------\n  k:\n      v"},
		{"empty string", map[string]any{"web1": ""}, "web1:"},
		{"float", 0.1, "0.1"},
		{"none", nil, "None"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Nested(tt.v, 0, Options{}); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestHighstateGolden(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		opts      Options
		wantStats HighstateStats
	}{
		{"highstate_mixed", "highstate_mixed.json", Options{},
			HighstateStats{Succeeded: 4, Unchanged: 1, Changed: 3, Failed: 1, Total: 5, DurationMS: 1018}},
		{"highstate_mixed_color", "highstate_mixed.json", Options{Color: true},
			HighstateStats{Succeeded: 4, Unchanged: 1, Changed: 3, Failed: 1, Total: 5, DurationMS: 1018}},
		{"highstate_mixed_terse", "highstate_mixed.json", Options{StateOutput: "terse"},
			HighstateStats{Succeeded: 4, Unchanged: 1, Changed: 3, Failed: 1, Total: 5, DurationMS: 1018}},
		{"highstate_mixed_changes", "highstate_mixed.json", Options{StateOutput: "changes"},
			HighstateStats{Succeeded: 4, Unchanged: 1, Changed: 3, Failed: 1, Total: 5, DurationMS: 1018}},
		{"highstate_mixed_mixed", "highstate_mixed.json", Options{StateOutput: "mixed"},
			HighstateStats{Succeeded: 4, Unchanged: 1, Changed: 3, Failed: 1, Total: 5, DurationMS: 1018}},
		{"highstate_ok", "highstate_ok.json", Options{},
			HighstateStats{Succeeded: 2, Changed: 1, Total: 2, DurationMS: 21.125}},
		{"highstate_ok_color", "highstate_ok.json", Options{Color: true},
			HighstateStats{Succeeded: 2, Changed: 1, Total: 2, DurationMS: 21.125}},
		{"highstate_test", "highstate_test.json", Options{},
			HighstateStats{Succeeded: 2, Unchanged: 1, Changed: 1, Total: 2, DurationMS: 2.9}},
		{"highstate_test_color", "highstate_test.json", Options{Color: true},
			HighstateStats{Succeeded: 2, Unchanged: 1, Changed: 1, Total: 2, DurationMS: 2.9}},
		{"highstate_compile_error", "highstate_compile_error.json", Options{Color: true},
			HighstateStats{CompileErrors: []string{
				"Rendering SLS 'base:web' failed: mapping values are not allowed here; line 3",
				"Requisite require of 'nginx conf' refers to unknown state 'pkg: nginxx'"}}},
		{"highstate_malformed", "highstate_malformed.json", Options{},
			HighstateStats{Failed: 2, Total: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st := Highstate("web1", loadJSON(t, tt.input), tt.opts)
			golden(t, tt.name, got+"\n")
			if !equalStats(st, tt.wantStats) {
				t.Errorf("stats = %+v, want %+v", st, tt.wantStats)
			}
			if st.OK() != (tt.wantStats.Failed == 0 && len(tt.wantStats.CompileErrors) == 0) {
				t.Errorf("OK() = %v", st.OK())
			}
			if !tt.opts.Color && strings.Contains(got, "\x1b") {
				t.Error("colour codes in uncoloured output")
			}
			if tt.opts.Color && !strings.Contains(got, "\x1b[") {
				t.Error("no colour codes in coloured output")
			}
		})
	}
}

func equalStats(a, b HighstateStats) bool {
	if strings.Join(a.CompileErrors, "\n") != strings.Join(b.CompileErrors, "\n") {
		return false
	}
	d := a.DurationMS - b.DurationMS
	return a.Succeeded == b.Succeeded && a.Unchanged == b.Unchanged && a.Changed == b.Changed &&
		a.Failed == b.Failed && a.Total == b.Total && d < 1e-9 && d > -1e-9
}

func TestHighstateNonStateReturns(t *testing.T) {
	tests := []struct {
		name string
		data any
		want string
	}{
		{"did not return", "Minion did not return. [No response]", "web1:\n    Minion did not return. [No response]"},
		{"null", nil, "web1:"},
		{"empty", map[string]any{}, "web1:\n\nSummary for web1\n-----------\nSucceeded: 0\nFailed:   0\n-----------\nTotal states run:    0\nTotal run time:  0.000 ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Highstate("web1", tt.data, Options{})
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestKeysGolden(t *testing.T) {
	tests := []struct {
		name  string
		input string
		opts  Options
	}{
		{"keys_list", "keys.json", Options{}},
		{"keys_list_color", "keys.json", Options{Color: true}},
		{"keys_finger", "keys_finger.json", Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Keys(loadJSON(t, tt.input), tt.opts)
			if !ok {
				t.Fatal("Keys refused a key listing")
			}
			golden(t, tt.name, got)
		})
	}
}

func TestKeysRefusesOtherShapes(t *testing.T) {
	for _, v := range []any{
		nil, "x", []any{"a"}, map[string]any{},
		map[string]any{"accepted": []any{"a"}, "minions": []any{"b"}},
		map[string]any{"accepted": "web1"},
	} {
		if _, ok := Keys(v, Options{}); ok {
			t.Errorf("Keys(%#v) accepted a non key listing", v)
		}
	}
}

func TestTableGolden(t *testing.T) {
	var buf bytes.Buffer
	err := Table(&buf, []string{"ID", "STATE", "OS"}, [][]string{
		{"web1", "up", "Debian 12"},
		{"database-primary", "down", ""},
		{"evil\x1b[31m\tid", "up", "line\nbreak"},
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "table", buf.String())
}

func TestJSONAndYAML(t *testing.T) {
	v := map[string]any{
		"web1":    map[string]any{"b": 1.0, "a": []any{"x", nil, true}},
		"ordered": OrderedMap{{"z", 1.0}, {"a", "<html>"}},
	}
	var j bytes.Buffer
	if err := JSON(&j, v); err != nil {
		t.Fatal(err)
	}
	golden(t, "json", j.String())
	var back map[string]any
	if err := json.Unmarshal(j.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not parse: %v", err)
	}
	var y bytes.Buffer
	if err := YAML(&y, v); err != nil {
		t.Fatal(err)
	}
	golden(t, "yaml", y.String())
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"tab\tand\nnewline", "tab\tand\nnewline"},
		{"\x1b[31mred\x1b[0m", "red"},
		{"\x1b]0;title\x07rest", "rest"},
		{"bell\x07nul\x00", `bell\anul\x00`},
		{"c1\u009bx", `c1\u009bx`},
		{"ünïcode ✓", "ünïcode ✓"},
	}
	for _, tt := range tests {
		if got := Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzRenderers feeds arbitrary JSON through every text outputter: none may
// panic, and no uncoloured output may contain an escape byte.
func FuzzRenderers(f *testing.F) {
	for _, name := range []string{"nested_shapes.json", "highstate_mixed.json", "highstate_compile_error.json", "highstate_malformed.json", "keys.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"x_|-y_|-z_|-w": {"result": null, "changes": "str", "comment": ["a", {"b": 1}], "duration": "x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		outs := []string{Nested(v, 0, Options{})}
		hs, _ := Highstate("m\x1b[1m", v, Options{StateOutput: "terse"})
		outs = append(outs, hs)
		hs, _ = Highstate("m", v, Options{})
		outs = append(outs, hs)
		if k, ok := Keys(v, Options{}); ok {
			outs = append(outs, k)
		}
		for _, o := range outs {
			if strings.ContainsRune(o, 0x1b) {
				t.Fatalf("escape byte in uncoloured output %q", o)
			}
		}
	})
}
