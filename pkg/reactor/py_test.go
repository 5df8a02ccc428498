package reactor

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/pyrender"
	"github.com/brine-cm/brine/pkg/webhook"
)

const pyKey = "py-webhook-key"

func signSHA1(key string, body []byte) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// pyStack is the story's wiring: webhook `deploy/*` with
// allow_unauthenticated, the #!py reactor checking X-Hub-Signature with
// the key in __opts__['github']['webhook-key'].
func pyStack(t testing.TB, local *fakeLocal) (*Reactor, *event.Local, string) {
	t.Helper()
	dir := t.TempDir()
	bus := event.NewLocal()
	r, err := New(Config{
		SpoolDir: dir + "/spool",
		Rules:    []Rule{{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{repoFile(t, "states/reactor/code-deploy-py.sls")}}},
		Opts:     map[string]any{"github": map[string]any{"webhook-key": pyKey}, "interface": "0.0.0.0"},
	}, bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := webhook.New(webhook.Config{Hooks: map[string]webhook.HookRule{"deploy/*": {AllowUnauthenticated: true}}}, r, bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(hs.Handler())
	t.Cleanup(ts.Close)
	runReactor(t, r)
	return r, bus, ts.URL
}

func postSHA1(t testing.TB, url, path string, body []byte, delivery, sig string) int {
	t.Helper()
	req, err := http.NewRequest("POST", url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	if sig != "" {
		req.Header.Set("X-Hub-Signature", sig)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestPyDeployReactorOverWebhook(t *testing.T) {
	body := pushBody(t, "")
	deleted := pushBody(t, strings.Repeat("0", 40))
	cases := []struct {
		name, path, sig string
		body            []byte
		want            []call
		failed          bool
	}{
		// GitHub's push for a deleted branch: signed, but nothing to deploy.
		{name: "branch deleted", path: "/hook/deploy/php-web-host", sig: signSHA1(pyKey, deleted), body: deleted},
		{name: "good signature", path: "/hook/deploy/php-web-host", sig: signSHA1(pyKey, body),
			want: []call{{Tgt: "roles:php-web-host", TgtType: "grain", Fun: "state.sls", Args: []any{"php-web-host.deploy", "prod"}, Kwargs: map[string]any{}, User: User}}},
		{name: "wrong key", path: "/hook/deploy/web", sig: signSHA1("guess", body)},
		{name: "sha256 value in the sha1 header", path: "/hook/deploy/web", sig: "sha1=" + strings.TrimPrefix(sign(pyKey, body), "sha256=")},
		// No header: .split on None fails the file, as in Python; no job.
		{name: "unsigned", path: "/hook/deploy/web", failed: true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			local := &fakeLocal{}
			r, bus, url := pyStack(t, local)
			events := collect(t, bus, "reactor/*")
			b := body
			if c.body != nil {
				b = c.body
			}
			if st := postSHA1(t, url, c.path, b, fmt.Sprint("d", i), c.sig); st != 200 {
				t.Fatalf("status %d", st)
			}
			waitFor(t, "the reaction", 10*time.Second, func() bool {
				st := r.Stats()
				return st.Spooled == 0 && (st.Reactions["started"]+st.Reactions["failed"] > 0 || len(c.want) == 0 && !c.failed)
			})
			waitFor(t, "the spool to empty", 10*time.Second, func() bool { return r.Stats().Spooled == 0 })
			got, _ := json.Marshal(local.all())
			want, _ := json.Marshal(c.want)
			if string(got) != string(want) {
				t.Fatalf("jobs\n got %s\nwant %s", got, want)
			}
			if c.failed {
				waitFor(t, "reactor/failed", 5*time.Second, func() bool { return len(events.withTag(TagFailed)) == 1 })
				if e := events.withTag(TagFailed)[0].Data["error"].(string); !strings.Contains(e, "code-deploy-py.sls:13") {
					t.Errorf("failure does not name file and line: %s", e)
				}
			}
		})
	}
	t.Run("other paths still need credentials", func(t *testing.T) {
		_, _, url := pyStack(t, &fakeLocal{})
		if st := postSHA1(t, url, "/hook/other", body, "x", signSHA1(pyKey, body)); st != http.StatusForbidden {
			t.Fatalf("status %d, want 403", st)
		}
	})
}

// The list-of-single-key-dicts form means the same from every renderer.
func TestPyAndYAMLReactionsAgree(t *testing.T) {
	files := map[string]string{
		"jinja": `deploy:
  local.state.sls:
    - tgt: 'roles:{{ tag.split('/')[-1] }}'
    - expr_form: grain
    - arg: ['{{ tag.split('/')[-1] }}.deploy', prod]
    - kwarg: {pillar: {rev: {{ data['rev'] | tojson }}}}
notify:
  runner.event.send:
    - tag: deploy/started
    - data: {n: 1, ok: true, f: 1.5}
`,
		"py": `#!py
def run():
    role = tag.split('/')[-1]
    return {
        'deploy': {'local.state.sls': [
            {'tgt': 'roles:' + role}, {'expr_form': 'grain'},
            {'arg': [role + '.deploy', 'prod']}, {'kwarg': {'pillar': {'rev': data['rev']}}}]},
        'notify': {'runner.event.send': [{'tag': 'deploy/started'}, {'data': {'n': 1, 'ok': True, 'f': 1.5}}]},
    }
`,
	}
	var results []string
	for _, name := range []string{"jinja", "py"} {
		dir := t.TempDir()
		file := writeFile(t, dir, "r.sls", files[name])
		r, err := New(Config{SpoolDir: dir + "/spool"}, nil, &fakeLocal{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := r.render(file, "salt/netapi/hook/deploy/web", map[string]any{"rev": "abc"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range rs {
			rs[i].Line = 0
		}
		b, _ := json.Marshal(rs)
		results = append(results, string(b))
	}
	if results[0] != results[1] {
		t.Fatalf("jinja and py reactions differ:\njinja %s\npy    %s", results[0], results[1])
	}
	if !strings.Contains(results[1], `"Args":["web.deploy","prod"]`) || !strings.Contains(results[1], `"TgtType":"grain"`) {
		t.Fatalf("unexpected reactions %s", results[1])
	}
}

// A #!py file that loops forever is stopped by its step limit; the other
// file matching the same event still reacts, and the worker is free.
func TestFailingPyReactionDoesNotStopOthers(t *testing.T) {
	dir := t.TempDir()
	loop := writeFile(t, dir, "loop.sls", "#!py\ndef run():\n    while True:\n        pass\n")
	bad := writeFile(t, dir, "bad.sls", "#!py\nimport subprocess\ndef run():\n    return {}\n")
	good := writeFile(t, dir, "good.sls", "#!py\ndef run():\n    return {'ping': {'local.test.ping': [{'tgt': data['id']}]}}\n")
	local := &fakeLocal{}
	bus := event.NewLocal()
	events := collect(t, bus, "reactor/*")
	r, err := New(Config{SpoolDir: dir + "/spool", Workers: 1, PyLimits: pyrender.Limits{MaxSteps: 50_000},
		Rules: []Rule{{TagGlob: "t/*", Files: []string{loop, bad, good}}}}, bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.process(context.Background(), job{tag: "t/x", data: map[string]any{"id": "web1"}})
	r.process(context.Background(), job{tag: "t/y", data: map[string]any{"id": "web2"}})
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	calls := local.all()
	if len(calls) != 2 || calls[0].Tgt != "web1" || calls[1].Tgt != "web2" {
		t.Fatalf("calls %+v", calls)
	}
	waitFor(t, "failure events", 2*time.Second, func() bool { return len(events.withTag(TagFailed)) == 4 })
	var msgs []string
	for _, e := range events.withTag(TagFailed) {
		msgs = append(msgs, e.Data["error"].(string))
	}
	all := strings.Join(msgs, "\n")
	if !strings.Contains(all, "loop.sls:") || !strings.Contains(all, "step limit") ||
		!strings.Contains(all, "bad.sls:2: import subprocess: module subprocess is not available") {
		t.Fatalf("failure messages:\n%s", all)
	}
	if st := r.Stats(); st.Reactions["failed"] != 4 || st.Reactions["started"] != 2 {
		t.Fatalf("stats %+v", st.Reactions)
	}
}

// BenchmarkPyReactor is the #!py deploy reactor alone (compiled once,
// cached): Starlark run with HMAC-SHA1 over a real push body and the
// reaction parse. Reported as reactions/s.
func BenchmarkPyReactor(b *testing.B) {
	dir := b.TempDir()
	r, err := New(Config{SpoolDir: dir, Opts: map[string]any{"github": map[string]any{"webhook-key": pyKey}}}, nil, &fakeLocal{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	body := pushBody(b, "")
	data := pushData(b, body)
	data["headers"].(map[string]any)["X-Hub-Signature"] = signSHA1(pyKey, body)
	file := repoFile(b, "states/reactor/code-deploy-py.sls")
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rs, err := r.render(file, "salt/netapi/hook/deploy/web", data)
			if err != nil || len(rs) != 1 {
				b.Error(rs, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reactions/s")
}

func TestPyNodeScalars(t *testing.T) {
	d := &pyrender.Dict{Keys: []string{"a"}, Vals: map[string]any{"a": []any{nil, true, 3, 2.5, "s"}}}
	n := pyNode(d)
	var v any
	if err := n.Decode(&v); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": []any{nil, true, 3, 2.5, "s"}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v", v)
	}
}
