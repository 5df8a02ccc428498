package render

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/state"
)

// The example tree in the repository's states/ must render the way its
// comments promise, against a mine of three database servers and a web
// host in env prod plus one minion in another env.
func repoTree() (*Tree, *fakeMine) {
	grains := map[string]map[string]any{
		"db1":      {"env": "prod", "roles": []any{"mongodb_server", "mongo_primary"}},
		"db3":      {"env": "prod", "roles": []any{"mongodb_server"}},
		"db2":      {"env": "prod", "roles": []any{"mongodb_server"}},
		"web1":     {"env": "prod", "roles": []any{"php-web-host"}},
		"web-stg1": {"env": "staging", "roles": []any{"php-web-host"}},
		"web-new":  {"env": "prod", "roles": []any{"php-web-host"}},
	}
	mine := &fakeMine{grains: grains, data: map[string]map[string]any{
		"db1":      {"network.ip_addrs": []any{"10.0.1.1", "172.17.0.1"}, "network.get_hostname": "db1.prod.example.com"},
		"db2":      {"network.ip_addrs": []any{"10.0.1.2"}, "network.get_hostname": "db2.prod.example.com"},
		"db3":      {"network.ip_addrs": []any{"10.0.1.3"}, "network.get_hostname": "db3"},
		"web1":     {"network.ip_addrs": []any{"10.0.2.1"}, "network.get_hostname": "web1.prod.example.com"},
		"web-stg1": {"network.ip_addrs": []any{"10.9.2.1"}, "network.get_hostname": "web-stg1"},
		// web-new has not published its addresses yet.
		"web-new": {"network.get_hostname": "web-new"},
	}}
	return &Tree{
		FileRoots:   map[string][]string{"base": {"../../../states"}},
		PillarRoots: map[string][]string{"base": {"../../../states/pillar"}},
		Matcher:     testMatcher{},
		Funcs:       mine,
	}, mine
}

func TestRepoHosts(t *testing.T) {
	tree, mine := repoTree()
	m := Minion{ID: "db1", Grains: map[string]any{"id": "db1", "env": "prod", "host": "db1", "roles": []any{"mongodb_server", "mongo_primary"}}}
	chunks, err := tree.SLS(context.Background(), m, []string{"hosts"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ ip, name string }
	var got []entry
	for _, c := range chunks {
		if c.State != "host" || c.Fun != "present" {
			t.Fatalf("unexpected chunk %s", c.Key())
		}
		got = append(got, entry{c.Args["ip"].(string), c.Name})
	}
	want := []entry{
		{"10.0.1.2", "db2"}, {"10.0.1.2", "db2.prod.example.com"},
		{"10.0.1.3", "db3"},
		{"10.0.2.1", "web1"}, {"10.0.2.1", "web1.prod.example.com"},
		{"127.0.0.1", "db1"}, {"127.0.0.1", "db1.prod.example.com"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hosts entries\n got %v\nwant %v", got, want)
	}
	for _, c := range chunks {
		if c.ID != "hosts-self" && c.Args["clean"] != true {
			t.Errorf("%s: clean not set", c.Key())
		}
	}
	if !slicesContain(mine.calls, "db1:env:prod:network.ip_addrs:grain") {
		t.Errorf("mine.get not called as env:prod/grain by db1: %v", mine.calls)
	}
}

func TestRepoReplset(t *testing.T) {
	tree, _ := repoTree()
	m := Minion{ID: "db1", Grains: map[string]any{"id": "db1", "env": "prod", "roles": []any{"mongodb_server", "mongo_primary"}}}
	top, err := tree.Top(context.Background(), m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(top, map[string][]string{"base": {"hosts", "mongodb.replset"}}) {
		t.Errorf("top for db1: %v", top)
	}
	chunks, err := tree.Highstate(context.Background(), m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rs *state.Chunk
	for i := range chunks {
		if chunks[i].State == "mongodb" {
			rs = &chunks[i]
		}
	}
	if rs == nil {
		t.Fatalf("no mongodb.replset chunk in %v", keys(chunks))
	}
	if rs.Fun != "replset" || rs.Name != "rs0" {
		t.Errorf("chunk %s", rs.Key())
	}
	want := []any{
		map[string]any{"_id": 0, "host": "db1.prod.example.com:27017"},
		map[string]any{"_id": 1, "host": "db2.prod.example.com:27017"},
		map[string]any{"_id": 2, "host": "db3:27017"},
	}
	if !reflect.DeepEqual(rs.Args["members"], want) {
		t.Errorf("members\n got %#v\nwant %#v", rs.Args["members"], want)
	}
}

func TestRepoDeploy(t *testing.T) {
	tree, _ := repoTree()
	m := Minion{ID: "web1", Grains: map[string]any{"id": "web1", "env": "prod", "roles": []any{"php-web-host"}}}
	rev := "0123456789abcdef0123456789abcdef01234567"
	// A highstate installs the packages but never deploys: it must not roll
	// the app back to whatever revision a pillar file names.
	hs, err := tree.Highstate(context.Background(), m, Options{Pillar: map[string]any{"deploy": map[string]any{"rev": rev}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range hs {
		if c.State == "git" || c.ID == "app-current" {
			t.Errorf("highstate deploys: %v", keys(hs))
		}
	}
	chunks, err := tree.SLS(context.Background(), m, []string{"php-web-host.deploy"}, Options{Pillar: map[string]any{"deploy": map[string]any{"rev": rev}}})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]state.Chunk{}
	pos := map[string]int{}
	for i, c := range chunks {
		byID[c.State+":"+c.ID] = c
		pos[c.State+":"+c.ID] = i
	}
	gitc := byID["git:app-release"]
	if gitc.Name != "https://git.example.com/acme/app.git" || gitc.Args["target"] != "/srv/app/releases/"+rev || gitc.Args["rev"] != rev || gitc.Args["force_reset"] != true {
		t.Errorf("git.latest: %+v", gitc)
	}
	link := byID["file:app-current"]
	if link.Name != "/srv/app/current" || link.Args["target"] != "/srv/app/releases/"+rev || link.Args["force"] != true {
		t.Errorf("file.symlink: %+v", link)
	}
	for _, svc := range []string{"service:nginx", "service:uwsgi"} {
		c, ok := byID[svc]
		if !ok {
			t.Fatalf("no %s in %v", svc, keys(chunks))
		}
		if !slicesContain(reqKeys(c, state.Watch), link.Key()) {
			t.Errorf("%s does not watch the current symlink: %v", svc, c.Requisites)
		}
		if pos[svc] < pos["file:app-current"] || pos["file:app-current"] < pos["git:app-release"] || pos["git:app-release"] < pos["pkg:php-web-host-packages"] {
			t.Errorf("order: %v", keys(chunks))
		}
	}
	if byID["service:nginx"].Args["reload"] != true {
		t.Errorf("nginx should reload")
	}

	// Without a rev anywhere the deploy refuses to render, naming why.
	tree.PillarRoots = nil
	_, err = tree.SLS(context.Background(), m, []string{"php-web-host.deploy"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "deploy:repo and deploy:rev") || !strings.Contains(err.Error(), "php-web-host/deploy.sls") {
		t.Errorf("deploy without pillar: %v", err)
	}
}

func reqKeys(c state.Chunk, kind string) []string {
	var out []string
	for _, r := range c.Requisites {
		if r.Kind == kind {
			out = append(out, r.Key)
		}
	}
	return out
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
