package render

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func testRC(t *testing.T, grains map[string]any, pillarYAML string) *renderCtx {
	t.Helper()
	p := newOmap()
	if pillarYAML != "" {
		v, err := parseYAML("pillar.sls", []byte(pillarYAML))
		if err != nil {
			t.Fatal(err)
		}
		p = v.(*omap)
	}
	return &renderCtx{ctx: context.Background(), tree: &Tree{}, minion: Minion{ID: "m1", Grains: grains}, pillar: p, saltenv: "base"}
}

// Examples from Salt's documentation of grains.filter_by.
func TestFilterBy(t *testing.T) {
	lookup := map[string]any{
		"Debian":  map[string]any{"pkg": "apache2", "conf": "/etc/apache2"},
		"RedHat":  map[string]any{"pkg": "httpd"},
		"Red*":    map[string]any{"pkg": "glob"},
		"default": map[string]any{"pkg": "web"},
		"common":  map[string]any{"conf": "/etc/web", "user": "www"},
	}
	tests := []struct {
		name   string
		grains map[string]any
		args   []any
		kwargs map[string]any
		want   any
		err    string
	}{
		{"os_family by default", map[string]any{"os_family": "Debian"}, []any{lookup}, nil, lookup["Debian"], ""},
		{"exact key before a matching pattern", map[string]any{"os_family": "RedHat"}, []any{lookup}, nil, lookup["RedHat"], ""},
		{"glob pattern", map[string]any{"os_family": "RedStar"}, []any{lookup}, nil, lookup["Red*"], ""},
		{"no match: default key", map[string]any{"os_family": "Arch"}, []any{lookup}, nil, lookup["default"], ""},
		{"default= names another key", map[string]any{"os_family": "Arch"}, []any{lookup}, map[string]any{"default": "Debian"}, lookup["Debian"], ""},
		{"grain= and a list grain", map[string]any{"roles": []any{"db", "web"}}, []any{map[string]any{"web": 1, "db": 2}}, map[string]any{"grain": "roles"}, 2, ""},
		{"nested grain path", map[string]any{"ip_interfaces": map[string]any{"eth0": []any{"10.0.0.1"}}}, []any{map[string]any{"10.*": "lan"}, "ip_interfaces:eth0"}, nil, "lan", ""},
		{"base under, merge over", map[string]any{"os_family": "Debian"}, []any{lookup}, map[string]any{"base": "common", "merge": map[string]any{"user": "alice"}},
			map[string]any{"pkg": "apache2", "conf": "/etc/apache2", "user": "alice"}, ""},
		{"nothing at all", map[string]any{}, []any{map[string]any{"x": 1}}, nil, nil, ""},
		{"merge with nothing found", map[string]any{}, []any{map[string]any{"x": 1}}, map[string]any{"merge": map[string]any{"y": 2}}, map[string]any{"y": 2}, ""},
		{"merge into a scalar", map[string]any{"os_family": "Arch"}, []any{map[string]any{"Arch": 1}}, map[string]any{"merge": map[string]any{"y": 2}}, nil, "must be a dict"},
		{"bad keyword", map[string]any{}, []any{lookup}, map[string]any{"grains": "x"}, nil, "unexpected argument grains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testRC(t, tt.grains, "").filterBy(tt.args, tt.kwargs)
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
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// merge must not change the lookup table a template still holds.
	if _, ok := lookup["Debian"].(map[string]any)["user"]; ok {
		t.Error("filter_by merged into the caller's lookup_dict")
	}
}

func TestPillarAndConfigGet(t *testing.T) {
	rc := testRC(t, map[string]any{"os": "Debian", "shared": "from grains"}, `
app:
  ports: [80, 443]
  db: {host: db1, port: 5432}
shared: from pillar
master:
  only_master: yes
'a:b': literal key
`)
	tests := []struct {
		name   string
		fn     func([]any, map[string]any) (any, error)
		args   []any
		kwargs map[string]any
		want   any
	}{
		{"colon path", rc.pillarGet, []any{"app:db:host"}, nil, "db1"},
		{"list index", rc.pillarGet, []any{"app:ports:1"}, nil, 443},
		{"negative index", rc.pillarGet, []any{"app:ports:-1"}, nil, 443},
		{"missing gives default", rc.pillarGet, []any{"app:db:user", "postgres"}, nil, "postgres"},
		{"missing gives ''", rc.pillarGet, []any{"nope"}, nil, ""},
		{"a key with the delimiter in it is not found, as in Salt", rc.pillarGet, []any{"a:b", "dflt"}, nil, "dflt"},
		{"other delimiter", rc.pillarGet, []any{"app/db/port"}, map[string]any{"delimiter": "/"}, 5432},
		{"merge=True layers pillar over the default", rc.pillarGet, []any{"app:db"}, map[string]any{"default": map[string]any{"host": "localhost", "user": "pg"}, "merge": true},
			map[string]any{"host": "db1", "port": 5432, "user": "pg"}},
		{"config.get: opts first", rc.configGet, []any{"id"}, nil, "m1"},
		{"config.get: grains before pillar", rc.configGet, []any{"shared"}, nil, "from grains"},
		{"config.get: pillar", rc.configGet, []any{"app:db:port"}, nil, 5432},
		{"config.get: pillar master last", rc.configGet, []any{"only_master"}, nil, true},
		{"config.get: default", rc.configGet, []any{"nope", 7}, nil, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fn(tt.args, tt.kwargs)
			if err != nil {
				t.Fatal(err)
			}
			got = plain(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// The per-file context Salt's generate_sls_context gives each SLS.
func TestSLSContext(t *testing.T) {
	tests := []struct {
		sls, file string
		want      map[string]any
	}{
		{"formula", "/srv/states/formula/init.sls", map[string]any{"tplfile": "formula/init.sls", "tpldir": "formula", "tpldot": "formula", "tplroot": "formula",
			"slspath": "formula", "slsdotpath": "formula", "slscolonpath": "formula", "sls_path": "formula"}},
		{"formula.sub.install", "/srv/states/formula/sub/install.sls", map[string]any{"tplfile": "formula/sub/install.sls", "tpldir": "formula/sub", "tpldot": "formula.sub", "tplroot": "formula",
			"slspath": "formula/sub", "slsdotpath": "formula.sub", "slscolonpath": "formula:sub", "sls_path": "formula_sub"}},
		{"top", "/srv/states/top.sls", map[string]any{"tplfile": "top.sls", "tpldir": ".", "tpldot": "", "tplroot": ".",
			"slspath": "", "slsdotpath": "", "slscolonpath": "", "sls_path": ""}},
	}
	for _, tt := range tests {
		vars := testRC(t, nil, "").vars(tt.sls, tt.file)
		for k, want := range tt.want {
			if vars[k] != want {
				t.Errorf("%s: %s = %q, want %q", tt.sls, k, vars[k], want)
			}
		}
		if vars["sls"] != tt.sls || vars["saltenv"] != "base" || vars["tplpath"] != tt.file {
			t.Errorf("%s: sls %v saltenv %v tplpath %v", tt.sls, vars["sls"], vars["saltenv"], vars["tplpath"])
		}
	}
}
