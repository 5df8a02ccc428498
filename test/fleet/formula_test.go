package fleet

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/state"
	"github.com/brine-cm/brine/pkg/state/render"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/formula")

// grainMatcher is just enough targeting for the shipped top files: glob
// '*' and grain matches against list or scalar grains.
type grainMatcher struct{}

func (grainMatcher) Match(expr, tgtType, id string, grains map[string]any) (bool, error) {
	if tgtType != "grain" {
		return expr == "*" || expr == id, nil
	}
	key, want, _ := strings.Cut(expr, ":")
	switch g := grains[key].(type) {
	case []any:
		for _, v := range g {
			if fmt.Sprint(v) == want {
				return true, nil
			}
		}
		return false, nil
	default:
		return fmt.Sprint(g) == want, nil
	}
}

// dumpChunks prints compiled chunks readably: file contents verbatim,
// other arguments as JSON, requisites by kind and ID.
func dumpChunks(chunks []state.Chunk) string {
	var b strings.Builder
	for _, c := range chunks {
		fmt.Fprintf(&b, "== %s.%s %s (%s)\n", c.State, c.Fun, c.ID, c.Name)
		keys := make([]string, 0, len(c.Args))
		for k := range c.Args {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if s, ok := c.Args[k].(string); ok && k == "contents" {
				fmt.Fprintf(&b, "  %s: |\n", k)
				for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
					fmt.Fprintf(&b, "    %s\n", line)
				}
				continue
			}
			j, _ := json.Marshal(c.Args[k])
			fmt.Fprintf(&b, "  %s: %s\n", k, j)
		}
		for _, r := range c.Requisites {
			fmt.Fprintf(&b, "  %s: %s\n", r.Kind, strings.Split(r.Key, "_|-")[1])
		}
	}
	return b.String()
}

// The php-web-host formula as the master compiles it for a Debian web
// host: map.jinja's layers (OS family, pillar lookup, pillar settings,
// deploy:root), both templates, the requisites, and the deploy's refusal
// of a revision that cannot name a release directory.
func TestPhpWebHostFormula(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tree := &render.Tree{
		FileRoots:   map[string][]string{"base": {filepath.Join(repo, "states")}},
		PillarRoots: map[string][]string{"base": {filepath.Join(repo, "states", "pillar")}},
		Matcher:     grainMatcher{},
	}
	web := render.Minion{ID: "web1", Grains: map[string]any{
		"id": "web1", "os_family": "Debian", "os": "Debian", "env": "prod", "roles": []any{"php-web-host"},
	}}
	rev := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name    string
		mods    []string
		pillar  map[string]any
		wantErr string
	}{
		{name: "init-defaults", mods: []string{"php-web-host"}},
		{name: "init-pillar-overrides", mods: []string{"php-web-host"}, pillar: map[string]any{
			"deploy": map[string]any{"root": "/srv/shop"},
			"php_web_host": map[string]any{
				"app": "shop", "processes": 8, "listen": 8080, "server_name": "shop.example.com", "remove_default_site": false,
				"lookup": map[string]any{"uwsgi_run_dir": "/run/uwsgi-shop"},
			},
		}},
		{name: "deploy", mods: []string{"php-web-host.deploy"}, pillar: map[string]any{"deploy": map[string]any{"rev": rev}}},
		{name: "deploy-no-rev", mods: []string{"php-web-host.deploy"}, wantErr: "needs pillar deploy:repo and deploy:rev"},
		{name: "deploy-traversal", mods: []string{"php-web-host.deploy"}, pillar: map[string]any{"deploy": map[string]any{"rev": "../../etc"}},
			wantErr: "cannot name a release directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks, err := tree.SLS(context.Background(), web, tc.mods, render.Options{Pillar: tc.pillar})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := dumpChunks(chunks)
			golden := filepath.Join("testdata", "formula", tc.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the compiled chunks:\n%s", golden, got)
			}
		})
	}
}
