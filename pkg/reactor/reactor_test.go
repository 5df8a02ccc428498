package reactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/webhook"
)

var update = flag.Bool("update", false, "rewrite golden files")

// stack is a webhook server in front of a reactor, over real HTTP.
type stack struct {
	bus     *event.Local
	local   *fakeLocal
	reactor *Reactor
	hook    *webhook.Server
	url     string
	client  *http.Client
	spool   string
	stop    context.CancelFunc
}

func newStack(t testing.TB, local *fakeLocal, mutate func(*Config)) *stack {
	t.Helper()
	dir := t.TempDir()
	secret := writeFile(t, dir, "secrets/github", ghSecret+"\n")
	cfg := Config{
		SpoolDir: filepath.Join(dir, "spool"),
		Secrets:  map[string]string{"github": secret},
		Rules: []Rule{
			{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{repoFile(t, "states/reactor/code-deploy.sls")}},
			{TagGlob: "mine/*/update", Files: []string{repoFile(t, "states/reactor/mine-update.sls")}},
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	bus := event.NewLocal()
	r, err := New(cfg, bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := webhook.New(webhook.Config{
		Hooks: map[string]webhook.HookRule{"deploy/*": {GitHubSecretFile: secret}},
	}, r, bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(hs.Handler())
	t.Cleanup(ts.Close)
	// Keep a connection per concurrent client, as a real sender would.
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	s := &stack{bus: bus, local: local, reactor: r, hook: hs, url: ts.URL, client: &http.Client{Transport: tr}, spool: cfg.SpoolDir}
	t.Cleanup(tr.CloseIdleConnections)
	s.stop = runReactor(t, r)
	waitFor(t, "the bus subscription", 2*time.Second, func() bool { return r.sub.Load() != nil })
	return s
}

func pushBody(t testing.TB, after string) []byte {
	t.Helper()
	b, err := os.ReadFile("../webhook/testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	if after == "" {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["after"] = after
	out, _ := json.Marshal(m)
	return out
}

func (s *stack) post(t testing.TB, path string, body []byte, delivery, sig string) (int, map[string]any) {
	req, err := http.NewRequest("POST", s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	if delivery != "" {
		req.Header.Set("X-GitHub-Delivery", delivery)
	}
	req.Header.Set("X-Hub-Signature-256", sig)
	res, err := s.client.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

func TestHookToDeploy(t *testing.T) {
	local := &fakeLocal{}
	s := newStack(t, local, nil)
	events := collect(t, s.bus, "*")
	body := pushBody(t, "")
	status, out := s.post(t, "/hook/deploy/web", body, "72d3162e-cc78-11e3-81ab-4c9367dc0958", sign(ghSecret, body))
	if status != 200 || out["success"] != true {
		t.Fatalf("status %d %v", status, out)
	}
	waitFor(t, "the deploy job", 5*time.Second, func() bool { return local.n.Load() == 1 })
	got, _ := json.MarshalIndent(local.all(), "", "  ")
	golden := "testdata/code-deploy.golden.json"
	if *update {
		os.WriteFile(golden, append(got, '\n'), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("published jobs differ from %s:\n%s", golden, got)
	}
	waitFor(t, "reactor/started", 2*time.Second, func() bool { return len(events.withTag(TagStarted)) == 1 })
	st := events.withTag(TagStarted)[0].Data
	if st["tag"] != "salt/netapi/hook/deploy/web" || st["reaction"] != "deploy_web" ||
		st["jid"] != "20260101120000000001" || !strings.HasSuffix(st["file"].(string), "code-deploy.sls") {
		t.Errorf("reactor/started %v", st)
	}
	// The hook event is on the bus for other subscribers, marked as spooled.
	hooks := events.withTag("salt/netapi/hook/deploy/web")
	if len(hooks) != 1 || hooks[0].Data[SpoolKey] == nil {
		t.Fatalf("hook events on bus: %v", hooks)
	}
	waitFor(t, "the spool to empty", 2*time.Second, func() bool { return s.reactor.Stats().Spooled == 0 })
	if n := spooledOnDisk(t, s.spool); n != 0 {
		t.Errorf("spool still holds %d events", n)
	}
	if st := s.reactor.Stats(); st.Reactions["started"] != 1 || st.Reactions["failed"] != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestBadSignatureInReactor(t *testing.T) {
	// The webhook itself lets this path through unauthenticated, so only
	// the reactor's own check (as a Salt user would write it) stands.
	local := &fakeLocal{}
	dir := t.TempDir()
	secret := writeFile(t, dir, "github", ghSecret)
	bus := event.NewLocal()
	r, err := New(Config{SpoolDir: dir + "/spool", Secrets: map[string]string{"github": secret},
		Rules: []Rule{{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{repoFile(t, "states/reactor/code-deploy.sls")}}}},
		bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := webhook.New(webhook.Config{AllowUnauthenticated: true}, r, bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(hs.Handler())
	defer ts.Close()
	events := collect(t, bus, "deploy/rejected")
	runReactor(t, r)
	body := pushBody(t, "")
	s := &stack{url: ts.URL, client: ts.Client()}
	if status, _ := s.post(t, "/hook/deploy/web", body, "d1", sign("wrong secret", body)); status != 200 {
		t.Fatalf("status %d", status)
	}
	waitFor(t, "deploy/rejected", 5*time.Second, func() bool { return len(events.withTag("deploy/rejected")) == 1 })
	ev := events.withTag("deploy/rejected")[0]
	if ev.Data["role"] != "web" || ev.Data["reason"] != "bad signature" || ev.Data["remote_addr"] != "127.0.0.1" {
		t.Errorf("rejected event %v", ev.Data)
	}
	if n := local.n.Load(); n != 0 {
		t.Fatalf("%d jobs published for a forged hook", n)
	}
}

func TestBurstOfSignedHooks(t *testing.T) {
	const n = 1000
	local := &fakeLocal{}
	s := newStack(t, local, nil)
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body := []byte(fmt.Sprintf(`{"after":"rev-%04d","repository":{"clone_url":"https://git.example/app.git"}}`, i))
				if status, out := s.post(t, "/hook/deploy/app", body, fmt.Sprintf("delivery-%04d", i), sign(ghSecret, body)); status != 200 || out["replayed"] != nil {
					t.Errorf("hook %d: %d %v", i, status, out)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	waitFor(t, "all reactions", 30*time.Second, func() bool { return local.n.Load() >= n })
	time.Sleep(100 * time.Millisecond) // a duplicate would show up now
	seen := map[string]int{}
	for _, c := range local.all() {
		rev := c.Kwargs["pillar"].(map[string]any)["deploy"].(map[string]any)["rev"].(string)
		seen[rev]++
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf("rev-%04d", i)]; c != 1 {
			t.Errorf("rev-%04d reacted to %d times", i, c)
		}
	}
	if len(local.all()) != n {
		t.Errorf("%d jobs for %d hooks", len(local.all()), n)
	}
	// Every hook again: all are replays and nothing more runs.
	for i := 0; i < n; i += 97 {
		body := []byte(fmt.Sprintf(`{"after":"rev-%04d","repository":{"clone_url":"https://git.example/app.git"}}`, i))
		if _, out := s.post(t, "/hook/deploy/app", body, fmt.Sprintf("delivery-%04d", i), sign(ghSecret, body)); out["replayed"] != true {
			t.Errorf("redelivery %d not a replay: %v", i, out)
		}
	}
	if st := s.reactor.Stats(); st.Overflow != 0 || st.BusDropped != 0 || st.Reactions["started"] != n {
		t.Errorf("stats %+v", st)
	}
}

func TestCrashBeforeReaction(t *testing.T) {
	tests := []struct {
		name string
		// crash leaves the spool as a process killed at that point would.
		crash func(t *testing.T, cfg Config, body []byte)
	}{
		{"accepted, never ran", func(t *testing.T, cfg Config, body []byte) {
			a, err := New(cfg, event.NewLocal(), &fakeLocal{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			acceptPush(t, a, body)
		}},
		{"reaction interrupted", func(t *testing.T, cfg Config, body []byte) {
			blocked := &fakeLocal{block: make(chan struct{}), entered: make(chan struct{}, 1)}
			a, err := New(cfg, event.NewLocal(), blocked, nil)
			if err != nil {
				t.Fatal(err)
			}
			stop := runReactor(t, a)
			acceptPush(t, a, body)
			<-blocked.entered
			stop() // the job never reached the master
			if blocked.n.Load() != 0 {
				t.Fatal("blocked local published")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{
				SpoolDir: filepath.Join(dir, "spool"),
				Secrets:  map[string]string{"github": writeFile(t, dir, "github", ghSecret)},
				Rules:    []Rule{{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{repoFile(t, "states/reactor/code-deploy.sls")}}},
			}
			body := pushBody(t, "")
			tc.crash(t, cfg, body)
			if n := spooledOnDisk(t, cfg.SpoolDir); n != 1 {
				t.Fatalf("spool holds %d entries after the crash, want 1", n)
			}

			local := &fakeLocal{}
			b, err := New(cfg, event.NewLocal(), local, nil)
			if err != nil {
				t.Fatal(err)
			}
			stop := runReactor(t, b)
			waitFor(t, "the replayed reaction", 5*time.Second, func() bool { return local.n.Load() == 1 })
			waitFor(t, "the spool to empty", 2*time.Second, func() bool { return b.Stats().Spooled == 0 })
			stop()
			if c := local.all()[0]; c.Kwargs["mods"] != "web.deploy" {
				t.Errorf("replayed job %+v", c)
			}

			// A third process: nothing left to run, and GitHub redelivering
			// the same delivery is refused as a replay.
			again := &fakeLocal{}
			c, err := New(cfg, event.NewLocal(), again, nil)
			if err != nil {
				t.Fatal(err)
			}
			runReactor(t, c)
			err = c.Accept(context.Background(), "salt/netapi/hook/deploy/web", pushData(t, body), "delivery-1")
			if !errors.Is(err, webhook.ErrReplayed) {
				t.Fatalf("redelivery after restart: %v, want ErrReplayed", err)
			}
			time.Sleep(50 * time.Millisecond)
			if n := again.n.Load() + local.n.Load(); n != 1 {
				t.Fatalf("reaction ran %d times in total", n)
			}
		})
	}
}

func pushData(t testing.TB, body []byte) map[string]any {
	post, err := webhook.DecodeJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"headers":     map[string]any{"X-Hub-Signature-256": sign(ghSecret, body), "X-Github-Event": "push"},
		"body":        string(body),
		"post":        post,
		"remote_addr": "192.0.2.7",
	}
}

func acceptPush(t testing.TB, r *Reactor, body []byte) {
	t.Helper()
	if err := r.Accept(context.Background(), "salt/netapi/hook/deploy/web", pushData(t, body), "delivery-1"); err != nil {
		t.Fatal(err)
	}
}

func TestBusEventsAndMineUpdate(t *testing.T) {
	local := &fakeLocal{}
	s := newStack(t, local, nil)
	s.bus.Publish(context.Background(), "mine/web1/update", map[string]any{"functions": []any{"network.ip_addrs"}})
	s.bus.Publish(context.Background(), "mine/web1/other", map[string]any{})
	waitFor(t, "hosts refresh", 5*time.Second, func() bool { return local.n.Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	calls := local.all()
	if len(calls) != 1 || calls[0].Tgt != "*" || calls[0].TgtType != "glob" || calls[0].Fun != "state.apply" ||
		calls[0].Kwargs["mods"] != "hosts" || calls[0].User != User {
		t.Fatalf("calls %+v", calls)
	}
}

func TestReactionFormats(t *testing.T) {
	tests := []struct {
		name  string
		sls   string
		data  map[string]any
		want  []call
		event string // tag of an expected runner event
	}{
		{name: "old style arg and kwarg with expr_form", sls: `
restart:
  local.service.restart:
    - tgt: 'web*'
    - expr_form: glob
    - arg:
      - nginx
    - kwarg:
        no_block: true
`, want: []call{{Tgt: "web*", TgtType: "glob", Fun: "service.restart", Args: []any{"nginx"}, Kwargs: map[string]any{"no_block": true}, User: User}}},
		{name: "new style args with positional and keyword", sls: `
run:
  local.cmd.run:
    - tgt: [web1, web2]
    - tgt_type: list
    - args:
      - uptime
      - cwd: /tmp
`, want: []call{{Tgt: "web1,web2", TgtType: "list", Fun: "cmd.run", Args: []any{"uptime"}, Kwargs: map[string]any{"cwd": "/tmp"}, User: User}}},
		{name: "reactions run in file order", sls: `
zz_first:
  local.test.ping:
    - tgt: a
aa_second:
  local.test.ping:
    - tgt: b
`, want: []call{{Tgt: "a", TgtType: "glob", Fun: "test.ping", Kwargs: map[string]any{}, User: User},
			{Tgt: "b", TgtType: "glob", Fun: "test.ping", Kwargs: map[string]any{}, User: User}}},
		{name: "jinja false condition renders nothing", sls: `
{% if data.get('go') %}
x:
  local.test.ping:
    - tgt: a
{% endif %}
`, data: map[string]any{"go": false}},
		{name: "yaml-only renderer", sls: `#!yaml
x:
  local.test.ping:
    - tgt: '{{ not jinja }}'
`, want: []call{{Tgt: "{{ not jinja }}", TgtType: "glob", Fun: "test.ping", Kwargs: map[string]any{}, User: User}}},
		{name: "runner event.send", sls: `
notify:
  runner.event.send:
    - tag: deploy/done
    - data:
        who: {{ data['who'] | tojson }}
`, data: map[string]any{"who": "jane"}, event: "deploy/done"},
		{name: "runner event.fire new style", sls: `
notify:
  runner.event.fire:
    - args:
      - tag: deploy/done
      - data: {who: x}
`, event: "deploy/done"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, "r.sls", tc.sls)
			local := &fakeLocal{}
			bus := event.NewLocal()
			events := collect(t, bus, "*")
			r, err := New(Config{SpoolDir: dir + "/spool", Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, bus, local, nil)
			if err != nil {
				t.Fatal(err)
			}
			data := tc.data
			if data == nil {
				data = map[string]any{}
			}
			r.process(context.Background(), job{tag: "t/x", data: data})
			got, _ := json.Marshal(local.all())
			want, _ := json.Marshal(tc.want)
			if tc.want == nil {
				want = []byte("null")
			}
			if string(got) != string(want) {
				t.Errorf("calls\n got %s\nwant %s", got, want)
			}
			if f := events.withTag(TagFailed); len(f) > 0 {
				t.Errorf("failed: %v", f[0].Data)
			}
			if tc.event != "" {
				waitFor(t, tc.event, time.Second, func() bool { return len(events.withTag(tc.event)) == 1 })
			}
		})
	}
}

func TestReactionErrors(t *testing.T) {
	tests := []struct {
		name, sls, want string
	}{
		{"pyobjects renderer", "#!pyobjects\n", "#!pyobjects reactors are not supported"},
		{"py refused import", "#!py\nimport os, subprocess\n", "r.sls:2: import os, subprocess: module subprocess is not available"},
		{"py run returns a list", "#!py\ndef run():\n    return [1]\n", "must return a dict"},
		{"py bad reaction", "#!py\ndef run():\n    return {'x': {'local.test.ping': [{'tgt': ''}]}}\n", `reaction "x": local.test.ping needs a non-empty tgt`},
		{"unknown renderer", "#!mako|yaml\n", `renderer "mako|yaml" is not supported`},
		{"not a mapping", "- a\n- b\n", "want a mapping of reaction ids"},
		{"no function", "x: 3\n", `reaction "x": want exactly one function`},
		{"two functions", "x:\n  local.a.b: []\n  local.c.d: []\n", "want exactly one function"},
		{"unknown client", "x:\n  remote.test.ping:\n    - tgt: a\n", `unknown client "remote"`},
		{"wheel", "x:\n  wheel.key.accept:\n    - match: a\n", "wheel reactions are not supported"},
		{"caller", "x:\n  caller.state.apply: []\n", "caller reactions are not supported"},
		{"missing tgt", "x:\n  local.test.ping:\n    - arg: [1]\n", "needs a non-empty tgt"},
		{"unknown option", "x:\n  local.test.ping:\n    - tgt: a\n    - ret: smtp\n", `unknown option "ret"`},
		{"bad tgt_type", "x:\n  local.test.ping:\n    - tgt: a\n    - tgt_type: grains\n", "unknown target type grains"},
		{"options as mapping", "x:\n  local.test.ping:\n    tgt: a\n", "want a list of options"},
		{"two-key option", "x:\n  local.test.ping:\n    - tgt: a\n      arg: b\n", "single `key: value`"},
		{"kwarg twice", "x:\n  local.state.apply:\n    - tgt: a\n    - args:\n      - mods: a\n    - kwarg: {mods: b}\n", `keyword argument "mods" given twice`},
		{"runner orchestrate", "x:\n  runner.state.orchestrate:\n    - mods: o\n", "runner.state.orchestrate is not supported"},
		{"runner without tag", "x:\n  runner.event.send:\n    - data: {}\n", "needs a tag"},
		{"runner data not a mapping", "x:\n  runner.event.send:\n    - tag: a\n    - data: [1]\n", "data must be a mapping"},
		{"bad yaml", "x: [\n", "rendered YAML"},
		{"jinja error names the file", "{{ data['nope']['deeper'] }}\n", "r.sls"},
		{"unknown secret", "{{ salt['hook.verify_github'](data, 'gitlab') }}\n", `no reactor secret named "gitlab"`},
		{"duplicate id", "x:\n  local.test.ping:\n    - tgt: a\nx:\n  local.test.ping:\n    - tgt: b\n", `reaction "x" defined twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, "r.sls", tc.sls)
			local := &fakeLocal{}
			bus := event.NewLocal()
			events := collect(t, bus, TagFailed)
			r, err := New(Config{SpoolDir: dir + "/spool", Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, bus, local, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.process(context.Background(), job{tag: "t/x", data: map[string]any{}})
			if local.n.Load() != 0 {
				t.Errorf("a job was published")
			}
			waitFor(t, "reactor/failed", time.Second, func() bool { return len(events.withTag(TagFailed)) == 1 })
			ev := events.withTag(TagFailed)[0].Data
			msg, _ := ev["error"].(string)
			if !strings.Contains(msg, tc.want) || ev["file"] != file || ev["tag"] != "t/x" {
				t.Errorf("reactor/failed %v, want error containing %q", ev, tc.want)
			}
			if r.Stats().Reactions["failed"] != 1 {
				t.Errorf("stats %+v", r.Stats())
			}
		})
	}
}

// Values from the event are data: a hostile `after` must end up as one
// string argument, and template syntax inside data is never evaluated.
func TestHostileEventData(t *testing.T) {
	tests := []struct {
		name, after string
	}{
		{"yaml structure", "x\n  - tgt: '*'\n"},
		{"flow mapping", "{tgt: '*'}"},
		{"quote breaking", "\"' ]} \n- tgt: '*'"},
		{"jinja syntax", "{{ salt['hook.verify_github'](data, 'github') }}{% raw %}"},
		{"yaml tags and anchors", "!!python/object:os.system &a *a"},
		{"unicode line separators", "a\u2028b\u0085c\r\nd"},
		{"emoji outside the BMP", "ship it \U0001F680 \U000C0F00"},
		{"escaped backslash before u", `\\ud83d\ude80 \ud83d`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			local := &fakeLocal{}
			dir := t.TempDir()
			cfg := Config{
				SpoolDir: filepath.Join(dir, "spool"),
				Secrets:  map[string]string{"github": writeFile(t, dir, "github", ghSecret)},
				Rules:    []Rule{{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{repoFile(t, "states/reactor/code-deploy.sls")}}},
			}
			r, err := New(cfg, event.NewLocal(), local, nil)
			if err != nil {
				t.Fatal(err)
			}
			body := pushBody(t, tc.after)
			r.process(context.Background(), job{tag: "salt/netapi/hook/deploy/web", data: pushData(t, body)})
			calls := local.all()
			if len(calls) != 1 {
				t.Fatalf("%d jobs", len(calls))
			}
			c := calls[0]
			if c.Tgt != "roles:web" || c.TgtType != "grain" || len(c.Args) != 0 {
				t.Errorf("target or args changed by data: %+v", c)
			}
			rev := c.Kwargs["pillar"].(map[string]any)["deploy"].(map[string]any)["rev"]
			if rev != tc.after {
				t.Errorf("rev %q, want the exact string %q", rev, tc.after)
			}
		})
	}
}

func TestOverflowIsCountedAndFired(t *testing.T) {
	local := &fakeLocal{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "x:\n  local.test.ping:\n    - tgt: a\n")
	bus := event.NewLocal()
	events := collect(t, bus, TagOverflow)
	r, err := New(Config{SpoolDir: dir + "/spool", Workers: 1, QueueHighWater: 2,
		Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	runReactor(t, r)
	ctx := context.Background()
	if err := r.Accept(ctx, "t/1", map[string]any{}, ""); err != nil {
		t.Fatal(err)
	}
	<-local.entered // the only worker is now busy
	for i := 2; i <= 3; i++ {
		if err := r.Accept(ctx, fmt.Sprintf("t/%d", i), map[string]any{}, ""); err != nil {
			t.Fatalf("accept %d within high water: %v", i, err)
		}
	}
	err = r.Accept(ctx, "t/4", map[string]any{}, "d-4")
	if !errors.Is(err, webhook.ErrUnavailable) {
		t.Fatalf("accept over high water: %v", err)
	}
	bus.Publish(ctx, "t/5", nil) // bus event over high water: dropped, counted
	waitFor(t, "bus overflow", 2*time.Second, func() bool { return r.Stats().Overflow == 2 })
	if st := r.Stats(); st.QueueDepth != 2 || st.HighWater != 2 {
		t.Errorf("stats %+v", st)
	}
	waitFor(t, "reactor/overflow", time.Second, func() bool { return len(events.withTag(TagOverflow)) >= 1 })
	if d := events.withTag(TagOverflow)[0].Data; d["tag"] != "t/4" || d["high_water"] != 2 {
		t.Errorf("overflow event %v", d)
	}
	close(local.block)
	waitFor(t, "the queue to drain", 5*time.Second, func() bool { return local.n.Load() == 3 })
	// The refused delivery was not remembered: the sender's retry works.
	if err := r.Accept(ctx, "t/4", map[string]any{}, "d-4"); err != nil {
		t.Fatalf("retry after overflow: %v", err)
	}
	waitFor(t, "the retried event", 5*time.Second, func() bool { return local.n.Load() == 4 })
}

func TestDrain(t *testing.T) {
	local := &fakeLocal{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "x:\n  local.test.ping:\n    - tgt: a\n")
	r, err := New(Config{SpoolDir: dir + "/spool", Workers: 2,
		Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, event.NewLocal(), local, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- r.Run(ctx) }()
	for i := 0; i < 5; i++ {
		if err := r.Accept(ctx, "t/x", map[string]any{}, ""); err != nil {
			t.Fatal(err)
		}
	}
	<-local.entered
	drained := make(chan error, 1)
	go func() { drained <- r.Drain(context.Background()) }()
	waitFor(t, "draining", time.Second, func() bool { return r.draining.Load() })
	if err := r.Accept(ctx, "t/x", map[string]any{}, ""); !errors.Is(err, webhook.ErrUnavailable) {
		t.Fatalf("accept while draining: %v", err)
	}
	select {
	case <-drained:
		t.Fatal("Drain returned while reactions were running")
	case <-time.After(50 * time.Millisecond):
	}
	close(local.block)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if n := local.n.Load(); n != 5 {
		t.Errorf("%d of 5 queued reactions ran before Drain returned", n)
	}
	select {
	case err := <-runDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Drain")
	}
}

func TestDrainTimeoutKeepsSpool(t *testing.T) {
	local := &fakeLocal{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "x:\n  local.test.ping:\n    - tgt: a\n")
	r, err := New(Config{SpoolDir: dir + "/spool", Workers: 1,
		Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, event.NewLocal(), local, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runReactor(t, r)
	for i := 0; i < 3; i++ {
		r.Accept(context.Background(), "t/x", map[string]any{}, fmt.Sprint("d", i))
	}
	<-local.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain: %v", err)
	}
	stop()
	if n := spooledOnDisk(t, filepath.Join(dir, "spool")); n != 3 {
		t.Errorf("%d spool entries kept, want 3", n)
	}
}

func TestSetRules(t *testing.T) {
	local := &fakeLocal{}
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "x:\n  local.test.ping:\n    - tgt: {{ tag.split('/')[1] | tojson }}\n")
	bus := event.NewLocal()
	r, err := New(Config{SpoolDir: dir + "/spool", Rules: []Rule{{TagGlob: "a/*", Files: []string{file}}}}, bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	runReactor(t, r)
	waitFor(t, "subscription", time.Second, func() bool { return r.sub.Load() != nil })
	bus.Publish(context.Background(), "a/1", nil)
	waitFor(t, "a/1", 2*time.Second, func() bool { return local.n.Load() == 1 })
	r.SetRules([]Rule{{TagGlob: "b/*", Files: []string{file}}})
	bus.Publish(context.Background(), "a/2", nil)
	bus.Publish(context.Background(), "b/3", nil)
	waitFor(t, "b/3", 2*time.Second, func() bool { return local.n.Load() == 2 })
	time.Sleep(30 * time.Millisecond)
	if c := local.all(); len(c) != 2 || c[1].Tgt != "3" {
		t.Errorf("calls %+v", c)
	}
	if got := r.Rules(); len(got) != 1 || got[0].TagGlob != "b/*" {
		t.Errorf("Rules() %v", got)
	}
}

func TestCorruptSpoolEntryIsQuarantined(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	writeFile(t, spoolDir, "pending/0000000000000000001-abc.json", `{"id": "0000000000000000001-abc", "tag": "t/x", "data": [`)
	writeFile(t, spoolDir, "pending/.0000000000000000002-abc.tmp", `half written`)
	bus := event.NewLocal()
	events := collect(t, bus, TagFailed)
	r, err := New(Config{SpoolDir: spoolDir}, bus, &fakeLocal{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runReactor(t, r)
	waitFor(t, "quarantine", 2*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(spoolDir, "pending/0000000000000000001-abc.json.bad"))
		return err == nil
	})
	waitFor(t, "reactor/failed", time.Second, func() bool { return len(events.withTag(TagFailed)) == 1 })
	if _, err := os.Stat(filepath.Join(spoolDir, "pending/.0000000000000000002-abc.tmp")); !os.IsNotExist(err) {
		t.Errorf("temp file of an unacknowledged write kept: %v", err)
	}
}

// Delivery ids are refused as replays for DeliveryRetention, then
// forgotten: whole day files, and an earlier version's per-id files by
// their mtime.
func TestDeliveryRetention(t *testing.T) {
	tests := []struct {
		name string
		// age makes the recorded delivery look older than the retention.
		age func(t *testing.T, delivered string)
	}{
		{"day file", func(t *testing.T, delivered string) {
			ents, _ := os.ReadDir(delivered)
			if len(ents) != 1 || ents[0].Name() != time.Now().UTC().Format(dayLayout)+".log" {
				t.Fatalf("delivery records %v, want one file for today", ents)
			}
			old := time.Now().UTC().Add(-72 * time.Hour).Format(dayLayout)
			if err := os.Rename(filepath.Join(delivered, ents[0].Name()), filepath.Join(delivered, old+".log")); err != nil {
				t.Fatal(err)
			}
		}},
		{"earlier version's per-id file", func(t *testing.T, delivered string) {
			// What the earlier spool wrote: an empty file named by the key.
			os.RemoveAll(delivered)
			p := writeFile(t, delivered, deliveryKey("t/x", "old"), "")
			old := time.Now().Add(-2 * time.Hour)
			os.Chtimes(p, old, old)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{SpoolDir: dir, DeliveryRetention: time.Hour}
			r, err := New(cfg, nil, &fakeLocal{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			stop := runReactor(t, r)
			if err := r.Accept(context.Background(), "t/x", map[string]any{}, "old"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "recorded", 2*time.Second, func() bool { return r.Stats().Spooled == 0 })
			stop()
			// Within the retention a restarted reactor refuses it.
			r1, _ := New(cfg, nil, &fakeLocal{}, nil)
			if err := r1.Accept(context.Background(), "t/x", map[string]any{}, "old"); !errors.Is(err, webhook.ErrReplayed) {
				t.Fatalf("replayed delivery after restart: %v", err)
			}
			tc.age(t, filepath.Join(dir, "delivered"))
			r2, _ := New(cfg, nil, &fakeLocal{}, nil)
			if err := r2.Accept(context.Background(), "t/x", map[string]any{}, "fresh"); err != nil {
				t.Fatal(err)
			}
			runReactor(t, r2)
			waitFor(t, "prune", 2*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(dir, "delivered", deliveryKey("t/x", "old")))
				old, _ := filepath.Glob(filepath.Join(dir, "delivered", time.Now().UTC().Add(-72*time.Hour).Format(dayLayout)+".log"))
				return os.IsNotExist(err) && len(old) == 0
			})
			if err := r2.Accept(context.Background(), "t/x", map[string]any{}, "old"); err != nil {
				t.Fatalf("delivery past retention refused: %v", err)
			}
		})
	}
}

func TestVerifyGitHub(t *testing.T) {
	dir := t.TempDir()
	r, err := New(Config{SpoolDir: dir, Secrets: map[string]string{"github": writeFile(t, dir, "gh", ghSecret+"\n")}}, nil, &fakeLocal{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	tests := []struct {
		name string
		data any
		want bool
	}{
		{"published vector", map[string]any{"body": "Hello, World!", "headers": map[string]any{"X-Hub-Signature-256": vector}}, true},
		{"header case-insensitive", map[string]any{"body": "Hello, World!", "headers": map[string]any{"x-hub-signature-256": vector}}, true},
		{"other body", map[string]any{"body": "Hello, World", "headers": map[string]any{"X-Hub-Signature-256": vector}}, false},
		{"no header", map[string]any{"body": "Hello, World!", "headers": map[string]any{}}, false},
		{"sha1 only", map[string]any{"body": "Hello, World!", "headers": map[string]any{"X-Hub-Signature": "sha1=01"}}, false},
		{"not event data", "Hello", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.verifyGitHub([]any{tc.data, "github"}, nil)
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := r.verifyGitHub([]any{map[string]any{}}, nil); err == nil {
		t.Error("missing secret name accepted")
	}
	// Through the template engine, as a reactor file calls it.
	file := writeFile(t, dir, "v.sls", "{% if salt['hook.verify_github'](data, 'github') %}ok:\n  local.test.ping:\n    - tgt: a\n{% endif %}\n")
	got, err := r.render(file, "t", tests[0].data.(map[string]any))
	if err != nil || len(got) != 1 {
		t.Fatalf("render: %v %v", got, err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		cfg   Config
		local Local
		want  string
	}{
		{"no spool", Config{}, &fakeLocal{}, "spool dir"},
		{"no local", Config{SpoolDir: dir}, nil, "no Local"},
		{"missing secret", Config{SpoolDir: dir, Secrets: map[string]string{"github": dir + "/nope"}}, &fakeLocal{}, `secret "github"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil, tc.local, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSaltURLReactorFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "roots/reactor/x.sls", "x:\n  local.test.ping:\n    - tgt: a\n")
	local := &fakeLocal{}
	r, err := New(Config{SpoolDir: dir + "/spool", FileRoots: []string{dir + "/empty", dir + "/roots"},
		Rules: []Rule{{TagGlob: "t", Files: []string{"salt://reactor/x.sls", "salt://reactor/missing.sls"}}}}, nil, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.process(context.Background(), job{tag: "t", data: map[string]any{}})
	if local.n.Load() != 1 || r.Stats().Reactions["failed"] != 1 {
		t.Errorf("jobs %d stats %+v", local.n.Load(), r.Stats())
	}
}

// A crash after the delivery was recorded but before the event was marked
// reacted to must not run the reaction again, whichever spool recorded it.
func TestCrashAfterRecordBeforeRemove(t *testing.T) {
	tests := []struct {
		name   string
		record func(t *testing.T, sp *spool, key string)
	}{
		{"day file", func(t *testing.T, sp *spool, key string) {
			c, _ := sp.j.append(nil, key, 0, false)
			<-c.done
			if c.err != nil {
				t.Fatal(c.err)
			}
		}},
		{"earlier version's per-id file", func(t *testing.T, sp *spool, key string) {
			if err := writeFileSync(filepath.Join(sp.delivered, key), nil); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, "r.sls", "x:\n  local.test.ping:\n    - tgt: a\n")
			cfg := Config{SpoolDir: filepath.Join(dir, "spool"), Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}
			sp, err := openSpool(cfg.SpoolDir)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if err := sp.write(newID(now), "t/x", "d-1", map[string]any{}, now); err != nil {
				t.Fatal(err)
			}
			tc.record(t, sp, deliveryKey("t/x", "d-1"))
			if n := spooledOnDisk(t, cfg.SpoolDir); n != 1 {
				t.Fatalf("%d events spooled before the restart, want 1", n)
			}
			local := &fakeLocal{}
			r, err := New(cfg, nil, local, nil)
			if err != nil {
				t.Fatal(err)
			}
			runReactor(t, r)
			waitFor(t, "the stale entry to go", 2*time.Second, func() bool { return spooledOnDisk(t, cfg.SpoolDir) == 0 })
			time.Sleep(20 * time.Millisecond)
			if n := local.n.Load(); n != 0 {
				t.Fatalf("reaction ran %d times after its delivery was recorded", n)
			}
		})
	}
}

func TestCodeDeploySkips(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"branch deleted", `{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000","deleted":true,"repository":{"clone_url":"x"}}`},
		// Forty zeros without "deleted" (some git hosts send only that).
		{"after of forty zeros", `{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000","repository":{"clone_url":"x"}}`},
		{"not a push (issues event)", `{"action":"opened","issue":{"number":1}}`},
		{"empty body", `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			local := &fakeLocal{}
			bus := event.NewLocal()
			failed := collect(t, bus, "reactor/failed")
			r, err := New(Config{SpoolDir: dir, Secrets: map[string]string{"github": writeFile(t, dir, "gh", ghSecret)},
				Rules: []Rule{{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{repoFile(t, "states/reactor/code-deploy.sls")}}}},
				bus, local, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.process(context.Background(), job{tag: "salt/netapi/hook/deploy/web", data: pushData(t, []byte(tc.body))})
			if local.n.Load() != 0 || r.Stats().Reactions["failed"] != 0 {
				t.Errorf("jobs %d, stats %+v, failures %v", local.n.Load(), r.Stats(), failed.tags())
			}
		})
	}
}
