package jinja

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSalt mirrors the functions testdata/gen.py gives Python's Jinja2, so
// both engines render the same templates against the same data.
func fakeSalt() map[string]any {
	data := map[string]map[string]any{
		"db1":  {"network.ip_addrs": []any{"10.0.1.1"}, "network.get_hostname": "db1.prod"},
		"db2":  {"network.ip_addrs": []any{"10.0.1.2", "10.9.9.2"}, "network.get_hostname": "db2.prod"},
		"web1": {"network.ip_addrs": []any{"10.0.0.11"}, "network.get_hostname": "web1.prod"},
	}
	mineGet := func(args []any, kwargs map[string]any) (any, error) {
		if len(args) != 2 {
			return nil, errors.New("mine.get takes tgt and fun")
		}
		tgt, fun := args[0].(string), args[1].(string)
		tgtType := "glob"
		if t, ok := kwargs["tgt_type"].(string); ok {
			tgtType = t
		}
		if t, ok := kwargs["expr_form"].(string); ok {
			tgtType = t
		}
		out := map[string]any{}
		for id, funs := range data {
			if tgtType == "glob" && !(tgt == "*" || strings.HasPrefix(id, strings.TrimRight(tgt, "*"))) {
				continue
			}
			if tgtType == "grain" && tgt != "env:prod" && !(tgt == "roles:db" && strings.HasPrefix(id, "db")) {
				continue
			}
			if v, ok := funs[fun]; ok {
				out[id] = v
			}
		}
		return out, nil
	}
	echo := func(args []any, kwargs map[string]any) (any, error) {
		return map[string]any{"args": args, "kwargs": kwargs}, nil
	}
	return map[string]any{"mine.get": Func(mineGet), "test.echo": Func(echo)}
}

func loadVars(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/vars.json")
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]any
	if err := json.Unmarshal(b, &vars); err != nil {
		t.Fatal(err)
	}
	normaliseNumbers(vars)
	vars["salt"] = fakeSalt()
	return vars
}

// normaliseNumbers turns JSON's float64 integers into ints, as YAML
// loading does for real pillar.
func normaliseNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, item := range x {
			x[k] = normaliseNumbers(item)
		}
	case []any:
		for i, item := range x {
			x[i] = normaliseNumbers(item)
		}
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	}
	return v
}

// TestGolden renders every testdata/render/*.j2 and compares with the
// output Python's Jinja2 produced (testdata/gen.py).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/render/*.j2")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden templates: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".j2")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".j2") + ".out")
			if err != nil {
				t.Fatal(err)
			}
			got, err := Render(filepath.Base(f), string(src), loadVars(t))
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if got != string(want) {
				t.Errorf("output differs from Jinja2's\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}
