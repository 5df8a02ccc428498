package pyrender_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/state/render"
)

type allMatch struct{}

func (allMatch) Match(expr, tgtType, id string, grains map[string]any) (bool, error) {
	return true, nil
}

type fakeMine struct{}

func (fakeMine) MineGet(ctx context.Context, requester, tgt, fun, tgtType string) (map[string]any, error) {
	return map[string]any{"db1": []any{"10.0.0.1"}, "db2": []any{"10.0.0.2"}}, nil
}

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func tree(t *testing.T, states, pillar map[string]string) *render.Tree {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "states"), states)
	write(t, filepath.Join(dir, "pillar"), pillar)
	return &render.Tree{
		FileRoots:   map[string][]string{"base": {filepath.Join(dir, "states")}},
		PillarRoots: map[string][]string{"base": {filepath.Join(dir, "pillar")}},
		Matcher:     allMatch{}, Funcs: fakeMine{},
	}
}

// A #!py state and a #!py pillar go through the same compiler as their
// Jinja+YAML equivalents and give identical pillar and compiled states
// (what state.show_sls shows).
func TestPyStateAndPillarMatchJinja(t *testing.T) {
	pillarTop := "base:\n  '*':\n    - deploy\n"
	jinja := tree(t, map[string]string{
		"web.sls": `{% set rev = pillar['deploy']['rev'] %}
{% set peers = salt['mine.get']('roles:db', 'network.ip_addrs', tgt_type='grain') %}
nginx:
  pkg.installed: []
  service.running:
    - enable: True
    - require:
      - pkg: nginx
/etc/app.conf:
  file.managed:
    - contents: "rev={{ rev }} peers={{ peers | length }} env={{ saltenv }} host={{ grains['id'] }}"
    - mode: '0644'
    - watch_in:
      - service: nginx
{% for p in ['a', 'b'] %}
dir_{{ p }}:
  file.directory:
    - name: /srv/{{ p }}
    - order: {{ loop.index }}
{% endfor %}
`}, map[string]string{"top.sls": pillarTop, "deploy.sls": "deploy:\n  rev: v{{ 1 + 1 }}\n  repos: [a, b]\n"})
	py := tree(t, map[string]string{
		"web.sls": `#!py
def run():
    rev = __pillar__['deploy']['rev']
    peers = __salt__['mine.get']('roles:db', 'network.ip_addrs', tgt_type='grain')
    out = {
        'nginx': {
            'pkg.installed': [],
            'service.running': [{'enable': True}, {'require': [{'pkg': 'nginx'}]}],
        },
        '/etc/app.conf': {'file.managed': [
            {'contents': 'rev={0} peers={1} env={2} host={3}'.format(rev, len(peers), __env__, grains['id'])},
            {'mode': '0644'},
            {'watch_in': [{'service': 'nginx'}]},
        ]},
    }
    for i, p in enumerate(['a', 'b']):
        out['dir_' + p] = {'file.directory': [{'name': '/srv/' + p}, {'order': i + 1}]}
    return out
`}, map[string]string{"top.sls": pillarTop, "deploy.sls": "#!py\ndef run():\n    return {'deploy': {'rev': 'v' + str(1 + 1), 'repos': ['a', 'b']}}\n"})

	ctx := context.Background()
	mn := render.Minion{ID: "web1", Grains: map[string]any{"id": "web1"}}
	opts := render.Options{Saltenv: "base"}
	var got [2]string
	for i, tr := range []*render.Tree{jinja, py} {
		p, err := tr.Pillar(ctx, mn, opts)
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := tr.SLS(ctx, mn, []string{"web"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.MarshalIndent(map[string]any{"pillar": p, "chunks": chunks}, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		got[i] = string(b)
	}
	if got[0] != got[1] {
		t.Fatalf("jinja and #!py differ:\n--- jinja\n%s\n--- py\n%s", got[0], got[1])
	}
	for _, want := range []string{"rev=v2 peers=2 env=base host=web1", `"pkg"`, "/srv/b"} {
		if !strings.Contains(got[1], want) {
			t.Errorf("compiled output lacks %q:\n%s", want, got[1])
		}
	}
}

func TestPyStateErrorsNameTheFile(t *testing.T) {
	tr := tree(t, map[string]string{"bad.sls": "#!py\nimport subprocess\ndef run():\n    return {}\n"}, nil)
	tr.PillarRoots = nil
	_, err := tr.SLS(context.Background(), render.Minion{ID: "m"}, []string{"bad"}, render.Options{Saltenv: "base"})
	if err == nil || !strings.Contains(err.Error(), "bad.sls:2: import subprocess: module subprocess is not available") {
		t.Fatalf("err = %v", err)
	}
}

type hostMine map[string]any

func (h hostMine) MineGet(ctx context.Context, requester, tgt, fun, tgtType string) (map[string]any, error) {
	if tgt != "roles:mongodb_server" || fun != "network.get_hostname" || tgtType != "grain" {
		return nil, nil
	}
	return h, nil
}

// The repository's #!py replica-set state compiles to exactly what its
// Jinja twin does, from the same mine and pillar.
func TestRepoReplsetPyMatchesJinja(t *testing.T) {
	states, _ := filepath.Abs("../../states")
	for name, mine := range map[string]hostMine{
		"three members": {"db2": "db2.example", "db1": "db1.example", "db10": "db10.example"},
		"empty mine":    {},
	} {
		t.Run(name, func(t *testing.T) {
			tr := &render.Tree{
				FileRoots:   map[string][]string{"base": {states}},
				PillarRoots: map[string][]string{"base": {filepath.Join(states, "pillar")}},
				Matcher:     allMatch{}, Funcs: mine,
			}
			mn := render.Minion{ID: "db1", Grains: map[string]any{"roles": []any{"mongo_primary"}}}
			var got [2]string
			for i, sls := range []string{"mongodb.replset", "mongodb.replset_py"} {
				chunks, err := tr.SLS(context.Background(), mn, []string{sls}, render.Options{Saltenv: "base"})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.MarshalIndent(chunks, "", " ")
				got[i] = strings.ReplaceAll(string(b), "replset_py", "replset")
			}
			if got[0] != got[1] {
				t.Fatalf("jinja and #!py replset differ:\n--- jinja\n%s\n--- py\n%s", got[0], got[1])
			}
			if len(mine) > 0 && !strings.Contains(got[1], `"db10.example:27017"`) {
				t.Fatalf("members missing:\n%s", got[1])
			}
		})
	}
}
