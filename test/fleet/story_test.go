package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestStory is the story, step by step, on six hosts:
// enrollment and the mine, /etc/hosts from the mine, the MongoDB replica
// set config, a signed GitHub push deploying two commits (and a forged
// one deploying nothing), an address change propagated by the reactor,
// and a master crash and a pulled cable.
func TestStory(t *testing.T) {
	w := newWorld(t)
	addrs := map[string]string{}
	for _, s := range story {
		addrs[s.id] = w.hosts[s.id].Addr.String()
	}

	// Each step is a subtest; w.t follows it so that helpers fail the step
	// they run in.
	step := func(name string, fn func(t *testing.T)) bool {
		return t.Run(name, func(st *testing.T) {
			w.t = st
			defer func() { w.t = t }()
			fn(st)
		})
	}
	if !step("1 enroll and fill the mine", func(t *testing.T) { w.enroll(t, addrs) }) {
		t.Fatal("without enrolled minions the rest of the story cannot run")
	}
	step("2 hosts files from the mine", func(t *testing.T) { w.hostsFromMine(t, addrs) })
	step("3 replica set config", w.replset)
	step("4 web tier: highstate, deploys by webhook", w.deploy)
	step("5 address change", func(t *testing.T) { w.addressChange(t, addrs) })
	step("6a master crash mid-highstate", func(t *testing.T) { w.masterCrash(t, addrs) })
	step("6b pulled cable", w.pulledCable)
	w.say("story done; tearing the fleet down")
}

func (w *world) enroll(t *testing.T, addrs map[string]string) {
	w.say("1. six minions start in their namespaces and wait with pending keys")
	eventually(t, "six pending keys", 30*time.Second, func() bool {
		k := w.ctl.mustJSON("key", "list").(map[string]any)
		p, _ := k["pending"].([]any)
		return len(p) == len(story)
	})
	out, _, _ := w.ctl.run("key", "list")
	w.show("brinectl key list", out)
	if out, errs, code := w.ctl.run("key", "accept", "--all"); code != 0 {
		t.Fatalf("brinectl key accept --all: exit %d\n%s%s", code, out, errs)
	}
	w.waitConnected(t)
	w.say("keys accepted; every minion connected; waiting for the mine")
	var ips, names map[string]any
	eventually(t, "mine: every minion's eth0 address and hostname", 30*time.Second, func() bool {
		ips = w.ctl.mustJSON("mine", "get", "*", "network.ip_addrs").(map[string]any)
		names = w.ctl.mustJSON("mine", "get", "*", "network.get_hostname").(map[string]any)
		for _, s := range story {
			if fmt.Sprint(ips[s.id]) != "["+addrs[s.id]+"]" || names[s.id] != s.id {
				return false
			}
		}
		return true
	})
	out, _, _ = w.ctl.run("mine", "get", "*", "network.ip_addrs")
	w.show("brinectl mine get '*' network.ip_addrs", out)
	if len(ips) != len(story) || len(names) != len(story) {
		t.Fatalf("mine holds more than the fleet: %v %v", ips, names)
	}
}

// applied checks a state run's JSON: every targeted minion returned a
// mapping of state results, all true (or, with test, none false).
func applied(t *testing.T, v any, ids []string, test bool) map[string]map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("state return is %T, not a mapping: %v", v, v)
	}
	out := map[string]map[string]any{}
	for _, id := range ids {
		r, ok := m[id].(map[string]any)
		if !ok {
			t.Errorf("%s: no state results: %v", id, m[id])
			continue
		}
		out[id] = map[string]any{}
		for key, res := range r {
			res, _ := res.(map[string]any)
			out[id][key] = res
			switch res["result"] {
			case true:
			case nil:
				if !test {
					t.Errorf("%s: %s: result null outside test mode: %v", id, key, res["comment"])
				}
			default:
				t.Errorf("%s: %s failed: %v", id, key, res["comment"])
			}
		}
	}
	if len(m) != len(ids) {
		t.Errorf("returns from %d minions, want %v: %v", len(m), ids, keys(m))
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func allIDs() []string {
	var ids []string
	for _, s := range story {
		ids = append(ids, s.id)
	}
	return ids
}

func (w *world) checkAllHosts(t *testing.T, addrs map[string]string) {
	t.Helper()
	for _, s := range story {
		content := readFile(w.hosts[s.id].HostsFile())
		if err := checkHosts(s.id, content, w.expectedHosts(s.id, addrs)); err != nil {
			t.Errorf("%s /etc/hosts: %v\n%s", s.id, err, content)
		}
	}
}

func (w *world) hostsFromMine(t *testing.T, addrs map[string]string) {
	w.say("2. state.apply hosts on every minion: /etc/hosts from the mine")
	// The mine-update reactor already ran hosts.sls when the mine first
	// filled; put every file back so that this run has to write them.
	w.quiesce(t, nil)
	for _, s := range story {
		if err := os.WriteFile(w.hosts[s.id].HostsFile(), []byte(originalHosts(s.id)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, code := w.ctl.json("state", "apply", "*", "hosts", "-t", "60")
	for id, res := range applied(t, v, allIDs(), false) {
		changed := 0
		for _, r := range res {
			if len(asMap(asMap(r)["changes"])) > 0 {
				changed++
			}
		}
		if changed == 0 {
			t.Errorf("%s: state.apply hosts changed nothing on a reset hosts file", id)
		}
	}
	if code != 0 {
		t.Errorf("state.apply hosts: exit %d", code)
	}
	w.checkAllHosts(t, addrs)
	w.show("web1:/etc/hosts", readFile(w.hosts["web1"].HostsFile()))
	w.show("stage1:/etc/hosts (staging sees no prod host)", readFile(w.hosts["stage1"].HostsFile()))

	// Inside the namespaces, through the resolver and the network.
	for _, c := range []struct{ on, name, want string }{
		{"web1", "db2", addrs["db2"]},
		{"db3", "web2", addrs["web2"]},
		{"web1", "web1", "127.0.0.1"},
	} {
		out, err := w.in(c.on, "getent", "hosts", c.name)
		if err != nil || strings.Fields(out)[0] != c.want {
			t.Errorf("%s: getent hosts %s: %q %v, want %s", c.on, c.name, out, err, c.want)
		}
	}
	if out, err := w.in("stage1", "getent", "hosts", "db2"); err == nil {
		t.Errorf("stage1 resolves prod's db2: %q", out)
	}
	out, err := w.in("web1", "ping", "-c1", "-W2", "db2")
	if err != nil {
		t.Errorf("web1: ping db2: %v", err)
	}
	w.show("web1$ ping -c1 db2", out)
}

func (w *world) replset(t *testing.T) {
	w.say("3. the replica set: mongodb.replset on db1, first test=True, then for real")
	record := w.path("hosts", "db1", "mongod-configs.jsonl")
	stub, err := w.hosts["db1"].Start("mongod stand-in on db1", w.path("hosts", "db1", "mongod.log"),
		[]string{helperEnv + "=mongostub", recordEnv + "=" + record}, w.self)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "mongod stand-in listening", 10*time.Second, func() bool {
		if !stub.Running() {
			t.Fatalf("mongod stand-in exited: %v\n%s", stub.Err(), readFile(stub.Log))
		}
		return strings.Contains(readFile(stub.Log), "ready")
	})

	members := func(cfg map[string]any) string {
		ms, _ := cfg["members"].([]any)
		var parts []string
		for _, m := range ms {
			m, _ := m.(map[string]any)
			parts = append(parts, fmt.Sprintf("%v=%v", m["_id"], m["host"]))
		}
		return strings.Join(parts, " ")
	}
	const want = "0=db1:27017 1=db2:27017 2=db3:27017"

	v, code := w.ctl.json("state", "apply", "db1", "mongodb.replset", "test=True", "-t", "60")
	res := applied(t, v, []string{"db1"}, true)
	if code != 0 {
		t.Errorf("test=True: exit %d", code)
	}
	r := only(t, res["db1"], "mongodb.replset")
	changes, _ := r["changes"].(map[string]any)
	cfg, _ := changes["initiated"].(map[string]any)
	if r["result"] != nil || cfg == nil {
		t.Fatalf("test=True: want result null and changes.initiated, got %v", r)
	}
	if got := members(cfg); got != want || cfg["_id"] != "rs0" {
		t.Errorf("config from test=True: _id %v, members %q, want rs0 %q", cfg["_id"], got, want)
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	w.show("replica set config db1 would initiate", string(b))
	if _, err := os.Stat(record); err == nil {
		t.Errorf("test=True sent a config to mongod: %s", readFile(record))
	}

	v, _ = w.ctl.json("state", "apply", "db1", "mongodb.replset", "-t", "60")
	applied(t, v, []string{"db1"}, false)
	sent := strings.TrimSpace(readFile(record))
	var got map[string]any
	if err := json.Unmarshal([]byte(sent), &got); err != nil {
		t.Fatalf("mongod received no config: %v (%q)", err, sent)
	}
	if members(got) != want || got["_id"] != "rs0" {
		t.Errorf("replSetInitiate received %s", sent)
	}
	w.show("replSetInitiate as mongod received it", sent)

	v, _ = w.ctl.json("state", "apply", "db1", "mongodb.replset", "test=True", "-t", "60")
	r = only(t, applied(t, v, []string{"db1"}, true)["db1"], "mongodb.replset")
	if r["result"] != true || len(asMap(r["changes"])) != 0 {
		t.Errorf("after initiate, test=True should find nothing to do: %v", r)
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// only returns the single result whose key starts with the state family.
func only(t *testing.T, res map[string]any, fun string) map[string]any {
	t.Helper()
	family := strings.Split(fun, ".")[0] + "_|-"
	var found []map[string]any
	for k, v := range res {
		if strings.HasPrefix(k, family) && strings.HasSuffix(k, "_|-"+strings.Split(fun, ".")[1]) {
			found = append(found, asMap(v))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s result, got %d in %v", fun, len(found), res)
	}
	return found[0]
}

func (w *world) addressChange(t *testing.T, addrs map[string]string) {
	to := netip.MustParseAddr("198.18.0.23")
	w.say("5. db3's eth0 moves from %s to %s", addrs["db3"], to)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := w.hosts["db3"].ReplaceAddr(ctx, to); err != nil {
		t.Fatal(err)
	}
	addrs["db3"] = to.String()
	eventually(t, "the mine has db3's new address", 30*time.Second, func() bool {
		m := w.ctl.mustJSON("mine", "get", "db3", "network.ip_addrs").(map[string]any)
		return fmt.Sprint(m["db3"]) == "["+to.String()+"]"
	})
	w.say("mine updated after %s", time.Since(start).Round(100*time.Millisecond))
	eventually(t, "web1's /etc/hosts points db3 at the new address (mine-update reactor)", 45*time.Second, func() bool {
		hf, err := parseHosts(readFile(w.hosts["web1"].HostsFile()))
		return err == nil && fmt.Sprint(hf.byName["db3"]) == "["+to.String()+"]"
	})
	w.say("web1's /etc/hosts rewritten by the reactor %s after the change", time.Since(start).Round(100*time.Millisecond))
	out, err := w.in("web1", "getent", "hosts", "db3")
	if err != nil || strings.Fields(out)[0] != to.String() {
		t.Errorf("web1: getent hosts db3: %q %v", out, err)
	}
	if _, err := w.in("web1", "ping", "-c1", "-W2", "db3"); err != nil {
		t.Errorf("web1: ping db3 at its new address: %v", err)
	}
	eventually(t, "every prod host has db3's new address", 30*time.Second, func() bool {
		for _, s := range story {
			if s.id == "db3" || s.env != "prod" {
				continue
			}
			hf, err := parseHosts(readFile(w.hosts[s.id].HostsFile()))
			if err != nil || fmt.Sprint(hf.byName["db3"]) != "["+to.String()+"]" {
				return false
			}
		}
		return true
	})
	w.show("web1:/etc/hosts", readFile(w.hosts["web1"].HostsFile()))
}

func (w *world) masterCrash(t *testing.T, addrs map[string]string) {
	w.say("6. the master is SIGKILLed in the middle of a highstate")
	pillar := `pillar={"deploy": {"rev": "` + w.deployed + `"}}`
	if w.deployed == "" {
		pillar = `pillar={}` // step 4 failed; web hosts will fail the deploy
	}
	// Reset every hosts file to its original content, so that the
	// highstate has to rewrite all of them while the master dies.
	old := map[string]string{}
	for _, s := range story {
		old[s.id] = originalHosts(s.id)
	}
	ignore := map[string]bool{} // jobs of earlier attempts, never complete
	var before map[string]bool
	for attempt := 1; ; attempt++ {
		before = w.quiesce(t, ignore)
		for _, s := range story {
			if err := os.WriteFile(w.hosts[s.id].HostsFile(), []byte(old[s.id]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		changed, returned := w.crashDuringHighstate(t, pillar, old)
		w.say("master killed with %d of %d hosts files rewritten and returns from %v", changed, len(story), returned)
		if len(returned) < len(story) {
			break
		}
		// A loaded machine can let the whole highstate finish before the
		// poll sees the first write; that crash proves nothing.
		if attempt == 3 {
			t.Fatalf("in %d attempts every minion had returned before the kill: never in the middle of the highstate", attempt)
		}
		w.say("every minion had returned before the kill; again")
		w.startMaster()
		w.waitConnected(t)
		for _, j := range w.ctl.mustJSON("job", "list").([]any) {
			if jid := fmt.Sprint(asMap(j)["jid"]); !before[jid] {
				ignore[jid] = true
			}
		}
	}

	// Every file, watched while the minions finish on their own: it always
	// parses, keeps its original lines, and every name in it is at the
	// right address. Each write is an atomic rename, so a reader sees a
	// whole file before or after each host.present, never half of one.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range story {
			content := readFile(w.hosts[s.id].HostsFile())
			want := w.expectedHosts(s.id, addrs)
			hf, err := parseHosts(content)
			if err == nil && !strings.HasPrefix(content, strings.SplitN(old[s.id], "\n", 2)[0]+"\n") {
				err = fmt.Errorf("original first line lost")
			}
			for name, got := range hf.byName {
				if err == nil && (len(got) != 1 || want[name] != got[0]) {
					err = fmt.Errorf("%s at %v, want %s", name, got, want[name])
				}
			}
			if err != nil {
				t.Fatalf("%s /etc/hosts after the crash: %v\n%s", s.id, err, content)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}

	w.say("6. master restarted; minions come back on their own")
	w.startMaster()
	w.waitConnected(t)
	// The job was written to the job cache before it was sent, so it
	// survives the crash. Its returns are whatever reached the master
	// before the kill, plus returns the minions held while the master was
	// away; minions it was never sent to will not return.
	var jobs []map[string]any
	for _, j := range w.ctl.mustJSON("job", "list").([]any) {
		// Reactions (user "reactor") may run after the reconnect too.
		if j := asMap(j); !before[fmt.Sprint(j["jid"])] && j["user"] != "reactor" {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) != 1 || fmt.Sprint(jobs[0]["minions"]) != fmt.Sprint(len(story)) {
		t.Errorf("want the crashed highstate, targeting %d minions, as the one new job in the cache: %v", len(story), jobs)
	} else {
		w.say("the crashed job %s is in the job cache: %v of %v minions returned", jobs[0]["jid"], jobs[0]["returned"], jobs[0]["minions"])
	}
	w.say("6. a second highstate converges")
	v, code := w.ctl.json("state", "highstate", "*", pillar, "-t", "90")
	applied(t, v, allIDs(), false)
	if code != 0 {
		t.Errorf("second highstate: exit %d", code)
	}
	w.checkAllHosts(t, addrs)
	if w.deployed != "" {
		w.served(t, w.deployed)
	}
	out, _, _ := w.ctl.run("state", "highstate", "web1", pillar, "-t", "60", "--state-output", "terse")
	w.show("brinectl state highstate web1 (terse)", out)
}

// crashDuringHighstate starts a highstate on every minion and SIGKILLs
// the master as soon as one hosts file differs from old. It returns how
// many files had changed then and which minions' returns brinectl got.
func (w *world) crashDuringHighstate(t *testing.T, pillar string, old map[string]string) (int, []string) {
	t.Helper()
	var out, errs string
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, errs, _ = w.ctl.run("state", "highstate", "*", pillar, "-t", "30", "--state-output", "terse")
	}()
	// Poll tightly: the kill must land while the minions are applying.
	changed := 0
	deadline := time.Now().Add(60 * time.Second)
	for changed == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the highstate wrote no hosts file within 60s")
		}
		for _, s := range story {
			if b, _ := os.ReadFile(w.hosts[s.id].HostsFile()); string(b) != old[s.id] {
				changed++
			}
		}
		time.Sleep(time.Millisecond)
	}
	if err := w.master.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	var returned []string
	for _, line := range strings.Split(out, "\n") {
		if id, ok := strings.CutSuffix(line, ":"); ok && w.specs[id].id == id {
			returned = append(returned, id)
		}
	}
	w.show("brinectl state highstate '*' as the master died (stderr)", errs)
	return changed, returned
}

func (w *world) waitConnected(t *testing.T) {
	t.Helper()
	eventually(t, "all minions connected", 45*time.Second, func() bool {
		n := 0
		for _, m := range w.ctl.mustJSON("minions").([]any) {
			if m.(map[string]any)["connected"] == true {
				n++
			}
		}
		return n == len(story)
	})
}

// quiesce waits until no job (but those in ignore) is waiting for returns
// and no hosts file is changing (the mine-update reactor may still be
// applying hosts.sls), and returns the jids in the job cache.
func (w *world) quiesce(t *testing.T, ignore map[string]bool) map[string]bool {
	t.Helper()
	jids := map[string]bool{}
	snapshot := func() string {
		var b strings.Builder
		for _, s := range story {
			b.WriteString(readFile(w.hosts[s.id].HostsFile()))
		}
		return b.String()
	}
	last := ""
	eventually(t, "every job returned and hosts files settled", 60*time.Second, func() bool {
		for _, j := range w.ctl.mustJSON("job", "list").([]any) {
			j := asMap(j)
			jid := fmt.Sprint(j["jid"])
			jids[jid] = true
			if !ignore[jid] && fmt.Sprint(j["returned"]) != fmt.Sprint(j["minions"]) {
				return false
			}
		}
		now := snapshot()
		settled := now == last
		last = now
		if !settled {
			time.Sleep(500 * time.Millisecond)
		}
		return settled
	})
	return jids
}

func (w *world) pulledCable(t *testing.T) {
	w.say("6. db2's cable is pulled (bridge-side veth down)")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.hosts["db2"].SetLink(ctx, false); err != nil {
		t.Fatal(err)
	}
	linkUp := false
	defer func() {
		if !linkUp {
			w.hosts["db2"].SetLink(context.Background(), true)
		}
	}()
	v, code := w.ctl.json("run", "*", "test.ping", "-t", "5")
	m := v.(map[string]any)
	if code == 0 {
		t.Errorf("test.ping with db2 cut off: exit 0, want 1")
	}
	for _, s := range story {
		if s.id == "db2" {
			if msg, _ := m["db2"].(string); !strings.Contains(msg, "did not return") {
				t.Errorf("db2 cut off: %v, want a did-not-return report", m["db2"])
			}
		} else if m[s.id] != true {
			t.Errorf("%s: %v", s.id, m[s.id])
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	w.show("brinectl run '*' test.ping -t 5 (db2 unplugged)", string(b))

	w.say("6. cable back: db2 rejoins and answers")
	if err := w.hosts["db2"].SetLink(ctx, true); err != nil {
		t.Fatal(err)
	}
	linkUp = true
	start := time.Now()
	eventually(t, "db2 answers again", 60*time.Second, func() bool {
		v, _ := w.ctl.json("run", "db2", "test.ping", "-t", "3")
		return v.(map[string]any)["db2"] == true
	})
	w.say("db2 answered %s after the link came back", time.Since(start).Round(100*time.Millisecond))
}
