package jinja

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/salt/*.out from the current output (review the diff)")

// TestSaltAdditions renders testdata/salt/*.sls: Salt's own Jinja
// additions (load_yaml/load_json blocks, import_yaml/json/text rendered
// through Jinja first, Salt's filters, the map.jinja pattern), which
// Jinja2 cannot be the oracle for. Expected outputs follow Salt's
// documentation of each.
func TestSaltAdditions(t *testing.T) {
	files, err := filepath.Glob("testdata/salt/*.sls")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	root := "testdata/salt"
	resolve := func(from, name string) (string, string, error) {
		full := RelativeName(from, name)
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(full)))
		return full, string(b), err
	}
	vars := map[string]any{
		"grains": map[string]any{"id": "db1", "os_family": "Debian"},
		"pillar": map[string]any{"mongodb": map[string]any{"port": 27018}},
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sls")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RenderOptions(filepath.Base(f), string(src), vars, Options{Resolve: resolve})
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			golden := strings.TrimSuffix(f, ".sls") + ".out"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s\n--- got\n%q\n--- want\n%q", golden, got, want)
			}
		})
	}
}
