package fleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/brine-cm/brine/test/fleet/netns"
)

var webIDs = []string{"web1", "web2"}

// page is what a web host must serve for rev.
func page(rev string) string { return "brine-demo rev=" + rev + " php=42" }

func (w *world) appDir(id string, parts ...string) string {
	return w.path(append([]string{"hosts", id, "app"}, parts...)...)
}

// pid reads a pid file under a web host's own /run and checks the
// process is alive.
func (w *world) pid(id, rel string) (int, error) {
	b, err := os.ReadFile(w.path("hosts", id, "run", rel))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", rel, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0, fmt.Errorf("%s: pid %d: %w", rel, pid, err)
	}
	return pid, nil
}

const uwsgiPid = "uwsgi/app/brine-demo/pid"

// servedOn waits until each web host, asked from inside its own
// namespace through nginx and uWSGI, serves rev's page.
func (w *world) servedOn(t *testing.T, rev string) {
	t.Helper()
	for _, id := range webIDs {
		var body string
		var err error
		url := "http://" + w.hosts[id].Addr.String() + "/"
		deadline := time.Now().Add(30 * time.Second)
		for {
			body, err = w.fetch(id, url)
			if err == nil && strings.TrimSpace(body) == page(rev) {
				break
			}
			if time.Now().After(deadline) {
				cur, _ := os.Readlink(w.appDir(id, "current"))
				t.Fatalf("%s: not serving rev=%s after 30s: last answer %q, %v (current -> %s)", id, short(rev), body, err, cur)
			}
			time.Sleep(150 * time.Millisecond)
		}
		w.show(fmt.Sprintf("%s$ GET %s (nginx -> uWSGI -> PHP)", id, url), body)
	}
}

// served is what each web host serves asked by name from the other one,
// through /etc/hosts and the bridge.
func (w *world) served(t *testing.T, rev string) {
	t.Helper()
	for _, c := range []struct{ from, to string }{{"web2", "web1"}, {"web1", "web2"}} {
		var body string
		var err error
		eventually(t, fmt.Sprintf("%s serving rev=%s to %s", c.to, rev[:7], c.from), 30*time.Second, func() bool {
			body, err = w.fetch(c.from, "http://"+c.to+"/")
			return err == nil && strings.TrimSpace(body) == page(rev)
		})
		w.show(fmt.Sprintf("%s$ GET http://%s/", c.from, c.to), body)
	}
}

func (w *world) wantCurrent(t *testing.T, rev string) {
	t.Helper()
	for _, id := range webIDs {
		want := w.appDir(id, "releases", rev)
		eventually(t, id+": current -> releases/"+rev[:7], 60*time.Second, func() bool {
			got, err := os.Readlink(w.appDir(id, "current"))
			return err == nil && got == want
		})
	}
}

// loop is a request loop running inside one web host's namespace
// against that host's nginx.
type loop struct {
	id   string
	proc *netns.Proc
	out  string
}

func (w *world) startLoops(t *testing.T) []*loop {
	t.Helper()
	var ls []*loop
	for _, id := range webIDs {
		l := &loop{id: id, out: w.path("hosts", id, fmt.Sprintf("loop-%d.json", time.Now().UnixNano()))}
		p, err := w.hosts[id].Start("request loop "+id, l.out+".log",
			[]string{helperEnv + "=loop", urlEnv + "=http://" + w.hosts[id].Addr.String() + "/", loopEnv + "=" + l.out}, w.self)
		if err != nil {
			t.Fatal(err)
		}
		l.proc = p
		eventually(t, "request loop on "+id+" started", 10*time.Second, func() bool {
			if !p.Running() {
				t.Fatalf("request loop on %s exited: %v\n%s", id, p.Err(), readFile(p.Log))
			}
			return strings.Contains(readFile(p.Log), "loop started")
		})
		ls = append(ls, l)
	}
	return ls
}

func (l *loop) stop(t *testing.T) loopSummary {
	t.Helper()
	l.proc.Signal(syscall.SIGTERM)
	select {
	case <-l.proc.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("request loop on %s did not stop", l.id)
	}
	var s loopSummary
	if err := json.Unmarshal([]byte(readFile(l.out)), &s); err != nil {
		t.Fatalf("request loop on %s: no summary: %v\n%s", l.id, err, readFile(l.proc.Log))
	}
	return s
}

// checkLoop: no failed request, and the revisions seen only ever move
// forward through order (old until the switch, new after, never back).
func checkLoop(t *testing.T, id string, s loopSummary, order []string, last string) {
	t.Helper()
	if s.Requests == 0 || s.Failures != 0 {
		t.Errorf("%s: request loop: %d requests, %d failed: %v", id, s.Requests, s.Failures, s.Errors)
	}
	pos := -1
	for _, r := range s.Runs {
		i := slices.Index(order, r.Rev)
		if i < 0 || i <= pos {
			t.Errorf("%s: request loop saw %s after %s (runs %v, deploy order %v)", id, short(r.Rev), short(order[max(pos, 0)]), s.Runs, order)
		}
		pos = max(pos, i)
	}
	if n := len(s.Runs); n == 0 || s.Runs[n-1].Rev != last {
		t.Errorf("%s: request loop did not end on %s: %v", id, short(last), s.Runs)
	}
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

func (l loopSummary) String() string {
	var parts []string
	for _, r := range l.Runs {
		parts = append(parts, fmt.Sprintf("%s x%d", short(r.Rev), r.Count))
	}
	return fmt.Sprintf("%d requests, %d failed; revisions in order: %s", l.Requests, l.Failures, strings.Join(parts, ", "))
}

// firstSeen is when a loop first got rev's page.
func (l loopSummary) firstSeen(rev string) (time.Time, bool) {
	for _, r := range l.Runs {
		if r.Rev == rev {
			return time.Unix(0, r.First), true
		}
	}
	return time.Time{}, false
}

// pushOK POSTs a signed push of rev and expects the webhook to accept it.
func (w *world) pushOK(t *testing.T, before, rev string) time.Time {
	t.Helper()
	at := time.Now()
	code, body := w.push("php-web-host", before, rev, w.secret)
	if code != 200 || !strings.Contains(body, `"success": true`) && !strings.Contains(body, `"success":true`) {
		t.Fatalf("signed push of %s: %d %s", short(rev), code, body)
	}
	w.show("POST /hook/deploy/php-web-host (push of "+short(rev)+", signed)", fmt.Sprintf("HTTP %d %s", code, body))
	return at
}

func (w *world) releases(id string) []string {
	ents, _ := os.ReadDir(w.appDir(id, "releases"))
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") { // init.sls's .placeholder
			names = append(names, e.Name())
		}
	}
	return names
}

// deploy is the web tier's story: php-web-host built by highstate, then
// signed pushes deploying commits while a request loop runs on each web
// host, a push of a commit that does not exist, two pushes in quick
// succession, pruning to five releases, and a forged push.
func (w *world) deploy(t *testing.T) {
	w.say("4. highstate on the web hosts: nginx, uWSGI with PHP, the site and the app, both services")
	v, code := w.ctl.json("state", "highstate", "-G", "roles:php-web-host", "-t", "90")
	res := applied(t, v, webIDs, false)
	if code != 0 {
		t.Errorf("highstate of the web hosts: exit %d", code)
	}
	for _, id := range webIDs {
		for key := range res[id] {
			if strings.HasPrefix(key, "git_|-") {
				t.Errorf("%s: the highstate deployed (%s); deploys are the pushes' business", id, key)
			}
		}
		if _, err := w.pid(id, "nginx.pid"); err != nil {
			t.Errorf("%s: nginx not running after the highstate: %v", id, err)
		}
		if _, err := w.pid(id, uwsgiPid); err != nil {
			t.Errorf("%s: uWSGI not running after the highstate: %v", id, err)
		}
	}
	out, _, _ := w.ctl.run("state", "highstate", "web1", "-t", "60", "--state-output", "terse")
	w.show("brinectl state highstate web1 (again, terse: nothing to do)", out)
	w.show("web1:/etc/nginx/sites-enabled/brine-demo.conf", readFile(filepath.Join(w.hosts["web1"].EtcDir(), "nginx", "sites-available", "brine-demo.conf")))
	w.show("web1:/etc/uwsgi/apps-enabled/brine-demo.ini", readFile(filepath.Join(w.hosts["web1"].EtcDir(), "uwsgi", "apps-available", "brine-demo.ini")))

	w.say("4. a GitHub push of commit A to /hook/deploy/php-web-host")
	zero := strings.Repeat("0", 40)
	a := w.commit("A")
	w.pushOK(t, zero, a)
	w.wantCurrent(t, a)
	w.servedOn(t, a)
	w.served(t, a)
	for _, id := range []string{"db1", "db2", "db3", "stage1"} {
		if _, err := os.Stat(w.path("hosts", id, "app")); err == nil {
			t.Errorf("%s is not a php-web-host but got a deploy", id)
		}
	}
	pids := map[string][2]int{}
	for _, id := range webIDs {
		n, err1 := w.pid(id, "nginx.pid")
		u, err2 := w.pid(id, uwsgiPid)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", id, err1, err2)
		}
		pids[id] = [2]int{n, u}
	}

	w.say("4. push B while a client on each web host loops requests against its nginx")
	loops := w.startLoops(t)
	time.Sleep(300 * time.Millisecond) // a few hundred requests of A first
	b := w.commit("B")
	pushedB := w.pushOK(t, a, b)
	w.wantCurrent(t, b)
	w.servedOn(t, b)
	time.Sleep(300 * time.Millisecond)

	w.say("4. a push of a commit that does not exist: the checkout fails, current stays on B")
	before := map[string]bool{}
	for _, j := range w.ctl.mustJSON("job", "list").([]any) {
		before[fmt.Sprint(asMap(j)["jid"])] = true
	}
	bogus := strings.Repeat("0badc0de", 5)
	w.pushOK(t, b, bogus)
	w.reactionFailed(t, before, bogus)
	for _, id := range webIDs {
		if got, _ := os.Readlink(w.appDir(id, "current")); got != w.appDir(id, "releases", b) {
			t.Errorf("%s: current is %s after a failed deploy, want release B", id, got)
		}
		if _, err := os.Stat(w.appDir(id, "releases", bogus)); err == nil {
			t.Errorf("%s: the failed checkout left releases/%s behind", id, short(bogus))
		}
	}

	// C and D back to back: the minion queues state runs in jid order, and
	// each deploy ends only once its release answers through nginx and
	// uWSGI, so D's reload never lands inside C's (uWSGI drops a SIGHUP
	// that arrives while it is still reloading). See docs/fleet.md.
	w.say("4. C and D pushed back to back: D ends up live")
	c := w.commit("C")
	d := w.commit("D")
	before = map[string]bool{}
	for _, j := range w.ctl.mustJSON("job", "list").([]any) {
		before[fmt.Sprint(asMap(j)["jid"])] = true
	}
	w.pushOK(t, b, c)
	w.pushOK(t, c, d)
	w.quiesceJobs(t)
	w.wantCurrent(t, d)
	w.servedOn(t, d)
	w.reactionServed(t, before, c)
	w.reactionServed(t, before, d)
	for _, id := range webIDs {
		if _, err := os.Stat(w.appDir(id, "releases", c)); err != nil {
			t.Errorf("%s: C was never deployed before D (queued runs must both run): %v", id, err)
		}
	}
	time.Sleep(300 * time.Millisecond)

	var sums []loopSummary
	for _, l := range loops {
		s := l.stop(t)
		sums = append(sums, s)
		checkLoop(t, l.id, s, []string{a, b, c, d}, d)
		w.say("%s: request loop during the deploys of B, %s (failed), C and D: %s", l.id, short(bogus), s)
	}
	var live time.Duration
	for i, s := range sums {
		seen, ok := s.firstSeen(b)
		if !ok {
			t.Errorf("%s: the request loop never saw B", webIDs[i])
			continue
		}
		live = max(live, seen.Sub(pushedB))
	}
	w.say("push to live: %s from the push of B to B served on every web host", live.Round(time.Millisecond))
	for _, id := range webIDs {
		n, err1 := w.pid(id, "nginx.pid")
		u, err2 := w.pid(id, uwsgiPid)
		if err1 != nil || err2 != nil || [2]int{n, u} != pids[id] {
			t.Errorf("%s: nginx/uWSGI master pids %v before the deploys, %d/%d (%v %v) after: a restart, not a graceful reload", id, pids[id], n, u, err1, err2)
		}
	}

	w.say("4. E and F: releases are pruned to the newest five, current kept")
	e := w.commit("E")
	w.pushOK(t, d, e)
	w.wantCurrent(t, e)
	f := w.commit("F")
	w.pushOK(t, e, f)
	w.wantCurrent(t, f)
	w.servedOn(t, f)
	w.quiesceJobs(t)
	want := []string{b, c, d, e, f}
	slices.Sort(want)
	for _, id := range webIDs {
		eventually(t, id+": releases pruned to B..F", 20*time.Second, func() bool {
			return slices.Equal(w.releases(id), want)
		})
	}
	if narrate {
		cur, _ := os.Readlink(w.appDir("web1", "current"))
		w.show("web1: releases and current", fmt.Sprintf("releases: %s\ncurrent -> %s", strings.Join(w.releases("web1"), " "), cur))
	}

	w.say("4. a forged push (bad signature) of commit G changes nothing")
	g := w.commit("G")
	code, body := w.push("php-web-host", f, g, []byte("not-the-secret"))
	if code != 401 {
		t.Errorf("forged push: want 401, got %d %s", code, body)
	}
	w.show("POST /hook/deploy/php-web-host (push of "+short(g)+", wrong secret)", fmt.Sprintf("HTTP %d %s", code, body))
	time.Sleep(2 * time.Second) // room for a wrong deploy to show up
	for _, id := range webIDs {
		if got, _ := os.Readlink(w.appDir(id, "current")); got != w.appDir(id, "releases", f) {
			t.Errorf("%s: current moved to %s after a forged push", id, got)
		}
		if _, err := os.Stat(w.appDir(id, "releases", g)); err == nil {
			t.Errorf("%s: forged commit G was cloned", id)
		}
	}
	w.served(t, f)
	w.deployed = f
}

// reactionFailed finds the reactor's state.apply job for rev (not in
// before) and checks that both web hosts returned a failed git.latest
// whose comment says the revision is not available, and that nothing
// after it ran.
func (w *world) reactionFailed(t *testing.T, before map[string]bool, rev string) {
	t.Helper()
	found := w.reactionStates(t, before, rev, "app-release")
	for _, r := range found {
		comment := fmt.Sprint(r["comment"])
		if r["result"] != false || !strings.Contains(comment, rev) || !strings.Contains(comment, "not available") {
			t.Errorf("git.latest of a missing commit: result %v, comment %q", r["result"], comment)
		}
	}
	w.show("the reaction's git.latest result (web hosts)", fmt.Sprint(found[0]["comment"]))
}

// reactionServed checks that the deploy of rev ended with its release
// answering through nginx and uWSGI on every web host.
func (w *world) reactionServed(t *testing.T, before map[string]bool, rev string) {
	t.Helper()
	for _, r := range w.reactionStates(t, before, rev, "app-serving-release") {
		if r["result"] != true {
			t.Errorf("deploy of %s: the serving check failed: %v", short(rev), r)
		}
	}
}

// reactionStates waits for the reactor's job that deployed rev (a job
// started after the jids in before) to return from every web host, and
// gives the results of the state with the given id, one per host.
func (w *world) reactionStates(t *testing.T, before map[string]bool, rev, id string) []map[string]any {
	t.Helper()
	var show map[string]any
	eventually(t, "the reaction to the push of "+short(rev)+" returned from both web hosts", 60*time.Second, func() bool {
		for _, j := range w.ctl.mustJSON("job", "list").([]any) {
			j := asMap(j)
			jid := fmt.Sprint(j["jid"])
			if before[jid] || j["user"] != "reactor" {
				continue
			}
			v, _ := w.ctl.json("job", "show", jid)
			if b, _ := json.Marshal(v); !strings.Contains(string(b), rev) {
				continue
			}
			if fmt.Sprint(j["returned"]) != fmt.Sprint(j["minions"]) {
				return false
			}
			show = asMap(v)
			return true
		}
		return false
	})
	var found []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["__id__"] == id {
				found = append(found, x)
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(show)
	if len(found) != len(webIDs) {
		t.Fatalf("want a %s result from each web host in the reaction's job, got %d: %v", id, len(found), show)
	}
	return found
}

// quiesceJobs waits until every deploy the reactor started has all its
// returns.
func (w *world) quiesceJobs(t *testing.T) {
	t.Helper()
	eventually(t, "every deploy returned", 60*time.Second, func() bool {
		for _, j := range w.ctl.mustJSON("job", "list").([]any) {
			j := asMap(j)
			if j["user"] == "reactor" && strings.Contains(fmt.Sprint(j["tgt"]), "php-web-host") && fmt.Sprint(j["returned"]) != fmt.Sprint(j["minions"]) {
				return false
			}
		}
		return true
	})
}
