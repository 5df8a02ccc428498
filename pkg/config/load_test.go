package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"typo", "port: 4506\nauto_acept: true\n", []string{":2:", `"auto_acept"`, "unknown key"}},
		{"nested typo", "webhook:\n  listen: :8000\n  hooks:\n    'deploy/*':\n      github_secret: /x\n", []string{":5:", `"webhook.hooks.deploy/*.github_secret"`, "unknown key"}},
		{"wrong type", "port: lots\n", []string{":1:", `"port"`, "integer"}},
		{"bool", "auto_accept: maybe\n", []string{":1:", `"auto_accept"`, "true or false"}},
		{"list for scalar", "interface: [a, b]\n", []string{":1:", `"interface"`, "single value"}},
		{"bad yaml", "port: 1\n  bad: indent\n", []string{"master"}},
		{"not a mapping", "- a\n- b\n", []string{"mapping"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "master")
			os.WriteFile(p, []byte(tc.text), 0o600)
			_, err := LoadMaster(p, true)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range append(tc.want, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadMinionMasterScalarOrList(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "minion")
	os.WriteFile(p, []byte("id: web1\nmaster: m1\ngrains:\n  roles: [web]\n"), 0o600)
	c, err := LoadMinion(p, true)
	if err != nil || len(c.Master) != 1 || c.Master[0] != "m1" || c.ID != "web1" {
		t.Fatalf("%+v %v", c, err)
	}
	os.WriteFile(p, []byte("master: [m1:4506, m2:4506]\n"), 0o600)
	if c, err = LoadMinion(p, true); err != nil || len(c.Master) != 2 {
		t.Fatalf("%+v %v", c.Master, err)
	}
	if _, err := LoadMinion(filepath.Join(dir, "absent"), false); err != nil {
		t.Fatalf("missing default config file: %v", err)
	}
	if _, err := LoadMinion(filepath.Join(dir, "absent"), true); err == nil {
		t.Fatal("missing explicit --config accepted")
	}
	c = DefaultMinion()
	if err := ApplyGrainFlags(&c, []string{"roles=[a, b]", "env=prod"}); err != nil || len(c.Grains["roles"].([]any)) != 2 {
		t.Fatalf("grain flags: %v %v", c.Grains, err)
	}
	if err := ApplyGrainFlags(&c, []string{"novalue"}); err == nil {
		t.Fatal("--grain without = accepted")
	}
}
