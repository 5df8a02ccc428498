package master_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/wire"
)

func mineGet(t *testing.T, tm *testMaster, tgt, fun, tgtType string) map[string]any {
	t.Helper()
	return tm.runner(t, "mine.get", []any{tgt, fun}, map[string]any{"tgt_type": tgtType}).(map[string]any)
}

func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// The mine through real minions: filled at enrollment, answered by grain
// target, readable by a minion, refilled after a flush and reconnect, and
// gone with the minion's key.
func TestMineThroughRealMinions(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) {
		c.AutoAccept = true
		c.MineFunctions = map[string]any{"network.get_hostname": []any{}, "greeting": map[string]any{"mine_function": "test.echo", "text": "hi"}}
	})
	updates := tm.Bus().Subscribe("mine/*/update", 100)
	defer updates.Close()
	roles := map[string]string{"db1": "mongodb_server", "db2": "mongodb_server", "web1": "web"}
	mins := map[string]*testMinion{}
	for id, role := range roles {
		mins[id] = startMinion(t, id, port, filepath.Join(dir, id), map[string]any{"roles": []any{role}, "env": "prod"}, nil)
	}
	waitFor(t, "mine filled for all three", 10*time.Second, func() bool {
		return len(mineGet(t, tm, "*", "greeting", "glob")) == 3
	})
	if got := keysOf(mineGet(t, tm, "roles:mongodb_server", "greeting", "grain")); got != "db1,db2" {
		t.Fatalf("grain-targeted mine.get = %s", got)
	}
	if v := mineGet(t, tm, "web1", "greeting", "glob")["web1"]; v != "hi" {
		t.Fatalf("alias mine function value = %v", v)
	}
	// A minion asks the master's mine itself (Salt's mine.get on a minion).
	p := tm.publish(t, "web1", "glob", "mine.get", []any{"roles:mongodb_server", "greeting"}, map[string]any{"tgt_type": "grain"}, 5*time.Second)
	if got, ok := wire.Any(p.returns["web1"].GetRet()).(map[string]any); !ok || keysOf(got) != "db1,db2" {
		t.Fatalf("minion-side mine.get = %v", wire.Any(p.returns["web1"].GetRet()))
	}
	// Each minion's first publish fired one update event; nothing else changed since.
	seen := map[string]int{}
	drain := time.After(300 * time.Millisecond)
loop:
	for {
		select {
		case ev := <-updates.C:
			seen[ev.Data["id"].(string)+ev.Tag]++
		case <-drain:
			break loop
		}
	}
	for id := range roles {
		if n := seen[id+"mine/"+id+"/update"]; n != 1 {
			t.Errorf("mine/%s/update fired %d times, want 1 (seen %v)", id, n, seen)
		}
	}
	// Flush db2, reconnect it (a master restart would do the same): the
	// minion republishes everything on connect.
	tm.runner(t, "mine.flush", []any{"db2"}, nil)
	if _, ok := mineGet(t, tm, "*", "greeting", "glob")["db2"]; ok {
		t.Fatal("mine.flush left db2's data")
	}
	mins["db2"].stop()
	mins["db2"] = startMinion(t, "db2", port, filepath.Join(dir, "db2"), map[string]any{"roles": []any{"mongodb_server"}}, nil)
	waitFor(t, "db2's mine back after reconnect", 10*time.Second, func() bool {
		_, ok := mineGet(t, tm, "*", "greeting", "glob")["db2"]
		return ok
	})
	// Deleting a key drops that minion's mine: it leaves everyone's hosts file.
	tm.runner(t, "key.delete", []any{"db1"}, nil)
	if got := keysOf(mineGet(t, tm, "*", "greeting", "glob")); got != "db2,web1" {
		t.Fatalf("after key delete, mine has %s", got)
	}
}

// hosts.sls from the repo's state tree applied to real minions whose
// hosts_file is a temp file: each file lists the other prod minions and
// itself at 127.0.0.1, keeps what brine does not own, and staging stays out.
func TestHostsStateOnRealMinions(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	states, _ := filepath.Abs("../../states")
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) {
		c.AutoAccept = true
		c.FileRoots = map[string][]string{"base": {states}}
		c.PillarRoots = map[string][]string{"base": {filepath.Join(states, "pillar")}}
		// Minions on one machine share its addresses and hostname; each
		// publishes its own from a static grain instead (the namespace
		// fleet in test/fleet uses the real eth0).
		c.MineFunctions = map[string]any{
			"network.ip_addrs":     map[string]any{"mine_function": "grains.get", "key": "fake_ips"},
			"network.get_hostname": map[string]any{"mine_function": "grains.get", "key": "id"},
		}
	})
	env := map[string]string{"web1": "prod", "db1": "prod", "stage1": "staging"}
	addr := map[string]string{"web1": "198.18.0.21", "db1": "198.18.0.22", "stage1": "198.18.0.23"}
	for id, e := range env {
		os.MkdirAll(filepath.Join(dir, id), 0o700)
		os.WriteFile(filepath.Join(dir, id, "hosts"), []byte("# managed by hand\n10.9.9.9 printer\n"), 0o644)
		startMinion(t, id, port, filepath.Join(dir, id), map[string]any{"env": e, "fake_ips": []any{addr[id]}}, nil)
	}
	waitFor(t, "mine filled", 10*time.Second, func() bool { return len(mineGet(t, tm, "*", "network.ip_addrs", "glob")) == 3 })

	p := tm.publish(t, "*", "glob", "state.apply", []any{"hosts"}, nil, 20*time.Second)
	for id := range env {
		r := p.returns[id]
		if r == nil || !r.GetSuccess() {
			t.Fatalf("%s: state.apply hosts: %v", id, r)
		}
	}
	for id, e := range env {
		b, err := os.ReadFile(filepath.Join(dir, id, "hosts"))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if !strings.HasPrefix(text, "# managed by hand\n10.9.9.9 printer\n") {
			t.Errorf("%s: foreign lines not kept:\n%s", id, text)
		}
		if !hostLine(text, "127.0.0.1", id) {
			t.Errorf("%s: itself not at 127.0.0.1:\n%s", id, text)
		}
		for other, oe := range env {
			if other == id {
				continue
			}
			present := hostLine(text, addr[other], other)
			if want := oe == e; present != want {
				t.Errorf("%s (env %s): entry for %s (env %s) present=%v:\n%s", id, e, other, oe, present, text)
			}
		}
	}
	metrics := scrape(t, tm.Master)
	if metricValue(t, metrics, "brine_state_render_seconds_count") < 3 || metricValue(t, metrics, "brine_state_apply_seconds_count") < 3 {
		t.Errorf("render/apply durations not observed:\n%s", metrics)
	}
	// Test mode predicts no changes once converged, through the same code path.
	p = tm.publish(t, "web1", "glob", "state.apply", []any{"hosts"}, map[string]any{"test": true}, 20*time.Second)
	for key, v := range wire.Any(p.returns["web1"].GetRet()).(map[string]any) {
		res := v.(map[string]any)
		if res["result"] != true || len(res["changes"].(map[string]any)) != 0 {
			t.Errorf("test=True after converging: %s = %v", key, res)
		}
	}
	// A render error is that minion's failed return, with the file named.
	p = tm.publish(t, "web1", "glob", "state.apply", []any{"no.such.sls"}, nil, 5*time.Second)
	if r := p.returns["web1"]; r == nil || r.GetSuccess() || !strings.Contains(fmt.Sprint(wire.Any(r.GetRet())), "no.such") {
		t.Fatalf("missing SLS: %v", r)
	}
}

func hostLine(text, ip, name string) bool {
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == ip {
			for _, n := range f[1:] {
				if n == name {
					return true
				}
			}
		}
	}
	return false
}

func TestAutosignToken(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("s3cret-enrol\n"), 0o600)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutosignTokenFile = tok })
	good := startMinion(t, "good", port, filepath.Join(dir, "good"), nil, func(c *config.Minion) { c.AutosignToken = "s3cret-enrol" })
	bad := startMinion(t, "bad", port, filepath.Join(dir, "bad"), nil, func(c *config.Minion) { c.AutosignToken = "guess" })
	waitFor(t, "token minion accepted", 5*time.Second, good.Connected)
	waitFor(t, "wrong token stays pending", 5*time.Second, func() bool { return bad.KeyState() == "pending" })
	keys := keyList(t, tm)
	if fmt.Sprint(keys["accepted"]) != "[good]" || fmt.Sprint(keys["pending"]) != "[bad]" {
		t.Fatalf("keys: %v", keys)
	}
}
