package hostile

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// hostilePayloads are what Salt's CVE-2021-25283 (template injection) and
// CVE-2020-16846 / CVE-2021-25281 (shell injection) exploited, each trying
// to create the canary file. CANARY is replaced by its path.
var hostilePayloads = []string{
	"{{ 7*7 }}",
	"{% raw %}{{ 7*7 }}{% endraw %}",
	"{{ salt['cmd.run']('touch CANARY') }}",
	"{% for x in range(3) %}{{ x }}{% endfor %}",
	"{{ ''.__class__.__mro__ }}",
	"; touch CANARY",
	"$(touch CANARY)",
	"`touch CANARY`",
	"x\ntouch CANARY",
	"${IFS}touch${IFS}CANARY",
	"'; touch CANARY; echo '",
	"\"; touch CANARY; echo \"",
	"-rf --help",
	"--upload-pack=touch CANARY",
	"ext::sh -c touch% CANARY",
	"| touch CANARY",
	"&& touch CANARY",
}

// The reactor file an operator would write for a CI hook: event values go
// into the job's pillar with |tojson, the only place they go.
const probeReactor = `{%- set p = data.get('post', data) %}
probe:
  local.state.apply:
    - tgt: {{ p.get('tgt', 'web1') | tojson }}
    - args:
      - mods: probe
      - pillar:
          n: {{ (p.get('n', 'x') ~ '') | tojson }}
          msg: {{ p.get('msg', '') | tojson }}
          hdr: {{ data.get('headers', {}).get('X-Probe', '') | tojson }}
          tag: {{ tag | tojson }}
argv:
  local.cmd.run:
    - tgt: {{ p.get('tgt', 'web1') | tojson }}
    - arg:
      - {{ ['sh', '-c', 'printf "%s" "$1" > "$2"', 'sh', p.get('msg', ''), '@DIR@/out/argv-' ~ p.get('n', 'x')] | tojson }}
`

// The state the probe applies: the values land in a file (file.managed)
// and go through a shell command the author wrote, as an environment
// variable — the way to hand data to a shell.
const probeState = `{%- set n = pillar.get('n', 'none') %}
probe_file:
  file.managed:
    - name: {{ ('@DIR@/out/probe-' ~ n) | tojson }}
    - contents: {{ ('msg=' ~ pillar.get('msg', '') ~ '|hdr=' ~ pillar.get('hdr', '') ~ '|tag=' ~ pillar.get('tag', '')) | tojson }}
probe_cmd:
  cmd.run:
    - name: printf '%s' "$MSG" > @DIR@/out/cmd-{{ n }}
    - env:
      - MSG: {{ pillar.get('msg', '') | tojson }}
`

// The story's deploy SLS for role web: log what is deployed (through the
// environment), then git.latest the repository at the revision.
const deployState = `deploy_log:
  cmd.run:
    - name: printf '%s %s\n' "$REV" "$REPO" >> @DIR@/out/deploy-log
    - env:
      - REV: {{ pillar['deploy']['rev'] | tojson }}
      - REPO: {{ pillar['deploy']['repo'] | tojson }}
deploy_checkout:
  git.latest:
    - name: {{ pillar['deploy']['repo'] | tojson }}
    - rev: {{ pillar['deploy']['rev'] | tojson }}
    - target: @DIR@/out/checkout
    - force_reset: True
`

func injectionFleet(t *testing.T) *contentFleet {
	t.Helper()
	storyReactor, err := filepath.Abs("../../states/reactor/code-deploy.sls")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"secrets/github":        "gh-hook-secret\n",
		"secrets/ci":            "ci-token\n",
		"reactor/probe.sls":     probeReactor,
		"states/probe.sls":      probeState,
		"states/web/deploy.sls": deployState,
	}
	extra := `webhook:
  listen: 127.0.0.1:@HOOKPORT@
  hooks:
    'deploy/*': {github_secret_file: @DIR@/secrets/github}
    'ci/*': {bearer_token_file: @DIR@/secrets/ci}
reactor_secrets: {github: @DIR@/secrets/github}
reactor:
  - 'salt/netapi/hook/deploy/*': [` + storyReactor + `]
  - 'salt/netapi/hook/ci/*': [@DIR@/reactor/probe.sls]
  - 'probe/event': [@DIR@/reactor/probe.sls]
`
	return startContentFleet(t, files, extra, map[string][]string{"web1": {"--grain", "roles=[web]"}})
}

func (f *contentFleet) hook(t *testing.T, path string, body []byte, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d%s", f.hookPort, path), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (f *contentFleet) canaryAbsent(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(f.path("canary")); err == nil {
		t.Fatal("the canary exists: an injected command ran")
	}
}

// CVE-2021-25283, CVE-2020-16846, CVE-2021-25281: template and shell
// injection through webhook bodies, headers and paths, event data and
// command-line pillar. Every value arrives in the applied state's file and
// in the author's shell command as exactly the text sent: nothing is
// evaluated ({{ 7*7 }} never becomes 49) and no injected command runs
// (the canary file is never created). Targets built from payloads match
// nothing and run nothing.
func TestTemplateAndShellInjectionNeverEvaluated(t *testing.T) {
	f := injectionFleet(t)
	canary := f.path("canary")
	type probe struct {
		n, via, msg, hdr, tag string
	}
	var want []probe
	bearer := map[string]string{"Authorization": "Bearer ci-token", "Content-Type": "application/json"}

	for i, p := range hostilePayloads {
		p = strings.ReplaceAll(p, "CANARY", canary)
		// Webhook body and header.
		n := fmt.Sprintf("b%d", i)
		body, _ := json.Marshal(map[string]any{"n": n, "msg": p})
		hdr := map[string]string{"Authorization": bearer["Authorization"], "Content-Type": "application/json"}
		h := ""
		if !strings.ContainsAny(p, "\n") {
			hdr["X-Probe"], h = p, p
		}
		if code := f.hook(t, "/hook/ci/probe", body, hdr); code != 200 {
			t.Fatalf("webhook %q: status %d", p, code)
		}
		want = append(want, probe{n, "webhook", p, h, "salt/netapi/hook/ci/probe"})
		// Event data fired on the bus.
		n = fmt.Sprintf("e%d", i)
		ev, _ := json.Marshal(map[string]any{"n": n, "msg": p})
		if out, code := f.ctl.Run("event", "fire", "probe/event", string(ev)); code != 0 {
			t.Fatalf("event fire: %d %s", code, out)
		}
		want = append(want, probe{n, "event", p, "", "probe/event"})
		// Command-line pillar.
		n = fmt.Sprintf("c%d", i)
		pil, _ := json.Marshal(map[string]any{"n": n, "msg": p})
		if out, code := f.ctl.Run("state", "apply", "web1", "probe", "pillar="+string(pil)); code != 0 {
			t.Fatalf("state.apply pillar=%s: %d\n%s", pil, code, out)
		}
		want = append(want, probe{n, "cli pillar", p, "", ""})
	}
	// Hook paths: the characters templates and shells need are refused at
	// the door; the ones allowed reach the state as a literal tag.
	for _, p := range []string{"{{7*7}}", "$(touch%20x)", "`id`", ";id", "a%0Ab", "..", "%2e%2e", "a/../b", "{%25raw%25}"} {
		if code := f.hook(t, "/hook/ci/"+p, []byte(`{"n":"never"}`), bearer); code != 404 {
			t.Errorf("hook path %q: status %d, want 404", p, code)
		}
	}
	for i, p := range []string{"--upload-pack=x", "ext::sh", "-rf", "a=b,c@d:e+f~g"} {
		n := fmt.Sprintf("p%d", i)
		if code := f.hook(t, "/hook/ci/"+p, []byte(`{"n":"`+n+`"}`), bearer); code != 200 {
			t.Fatalf("hook path %q: status %d", p, code)
		}
		want = append(want, probe{n, "hook path", "", "", "salt/netapi/hook/ci/" + p})
	}
	// Targets built from payload fields.
	tgts := []string{"web1; touch CANARY", "$(touch CANARY)", "web1 `touch CANARY`", "-E .*", "--help", "web1\ntouch CANARY", "G@roles:web and $(touch CANARY)"}
	for i, tg := range tgts {
		body, _ := json.Marshal(map[string]any{"n": fmt.Sprintf("t%d", i), "tgt": strings.ReplaceAll(tg, "CANARY", canary), "msg": "x"})
		if code := f.hook(t, "/hook/ci/probe", body, bearer); code != 200 {
			t.Fatalf("tgt %q: status %d", tg, code)
		}
	}

	passed := 0
	for _, w := range want {
		got, ok := f.waitFile("out/probe-"+w.n, 60*time.Second)
		if !ok {
			t.Errorf("%s %q: state never applied", w.via, w.msg)
			continue
		}
		tag := w.tag
		if w.via == "cli pillar" {
			tag = ""
		}
		exp := "msg=" + w.msg + "|hdr=" + w.hdr + "|tag=" + tag + "\n"
		if got != exp {
			t.Errorf("%s: file content\n got %q\nwant %q", w.via, got, exp)
			continue
		}
		cmdOut, ok := f.waitFile("out/cmd-"+w.n, 30*time.Second)
		if !ok || cmdOut != w.msg {
			t.Errorf("%s: the author's command saw %q, want %q", w.via, cmdOut, w.msg)
			continue
		}
		if w.via != "cli pillar" { // the reactor also ran cmd.run with an argv built from the event
			argv, ok := f.waitFile("out/argv-"+w.n, 30*time.Second)
			if !ok || argv != w.msg {
				t.Errorf("%s: the reactor's argv cmd.run saw %q, want %q", w.via, argv, w.msg)
				continue
			}
		}
		passed++
	}
	time.Sleep(2 * time.Second) // give the target cases every chance to misfire
	for i := range tgts {
		if _, err := os.Stat(f.path(fmt.Sprintf("out/probe-t%d", i))); err == nil {
			t.Errorf("target %q matched a minion", tgts[i])
		} else {
			passed++
		}
	}
	held, forged := forgedHookEvents(t, f)
	f.canaryAbsent(t)
	t.Logf("forged hook events from a minion: %d/%d refused", held, forged)
	t.Logf("template/shell injection: %d/%d cases held (%d payloads x webhook body+header, event data, CLI pillar; %d hook paths; %d targets)",
		passed, len(want)+len(tgts), len(hostilePayloads), 13, len(tgts))
}

func ghSign(body []byte) string {
	m := hmac.New(sha256.New, []byte("gh-hook-secret"))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func gitRepo(t *testing.T, dir string) (url string, shas []string) {
	t.Helper()
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(dir, 0o755)
	run("init", "-q", "-b", "main")
	for i := 0; i < 2; i++ {
		os.WriteFile(filepath.Join(dir, "README"), []byte(fmt.Sprintf("release %d\n", i)), 0o644)
		run("add", "README")
		run("commit", "-q", "-m", fmt.Sprintf("release %d", i))
		shas = append(shas, run("rev-parse", "HEAD"))
	}
	return "file://" + dir, shas
}

// The story's deploy path end to end (GitHub push -> webhook -> the
// shipped code-deploy.sls reactor -> state.apply web.deploy -> git.latest),
// replaying shell and git option injection in `after` and `clone_url`,
// and GitHub's delivery edge cases. Valid pushes deploy; injected values
// reach the author's command only as data, git.latest refuses them, and no
// canary appears; pings, forged or doubled signatures and branch deletions
// deploy nothing.
func TestGitHubDeployInjectionAndEdgeCases(t *testing.T) {
	f := injectionFleet(t)
	repo, shas := gitRepo(t, f.path("repo"))
	canary := f.path("canary")
	push := func(after, cloneURL string, extra map[string]any) []byte {
		m := map[string]any{"ref": "refs/heads/main", "after": after, "repository": map[string]any{"clone_url": cloneURL}}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	gh := func(body []byte, event string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "X-GitHub-Event": event, "X-Hub-Signature-256": ghSign(body)}
	}
	var logWant []string
	cases := 0
	send := func(what string, body []byte, hdr map[string]string, status int, deploys bool, rev, url string) {
		t.Helper()
		cases++
		if code := f.hook(t, "/hook/deploy/web", body, hdr); code != status {
			t.Errorf("%s: status %d, want %d", what, code, status)
		}
		if deploys {
			logWant = append(logWant, rev+" "+url)
		}
	}

	// Positive control: a real push deploys the commit.
	send("valid push", push(shas[0], repo, nil), gh(push(shas[0], repo, nil), "push"), 200, true, shas[0], repo)
	if _, ok := f.waitFile("out/checkout/README", 60*time.Second); !ok {
		b, _ := os.ReadFile(f.path("out/deploy-log"))
		t.Fatalf("control case: the valid push did not deploy (log %q)", b)
	}

	injections := []struct{ after, url string }{
		{"$(touch CANARY)", repo},
		{"`touch CANARY`", repo},
		{"; touch CANARY", repo},
		{"--upload-pack=touch CANARY", repo},
		{"-b evil", repo},
		{"main --output=CANARY", repo},
		{shas[0], "--upload-pack=touch CANARY"},
		{shas[0], "ext::sh -c touch% CANARY"},
		{shas[0], "-oProxyCommand=touch CANARY"},
		{shas[0], repo + "; touch CANARY"},
		{shas[0], "file://$(touch CANARY)"},
		{shas[0], "fd::17"},
	}
	for _, in := range injections {
		after := strings.ReplaceAll(in.after, "CANARY", canary)
		u := strings.ReplaceAll(in.url, "CANARY", canary)
		b := push(after, u, nil)
		send("injection "+after+" "+u, b, gh(b, "push"), 200, true, after, u)
	}

	// GitHub delivery edge cases through the real master.
	b := push(shas[1], repo, nil)
	send("ping", b, gh(b, "ping"), 200, false, "", "")
	send("forged signature", b, map[string]string{"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": ghSign([]byte("other"))}, 401, false, "", "")
	send("wrong prefix", b, map[string]string{"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha1=" + strings.TrimPrefix(ghSign(b), "sha256=")}, 401, false, "", "")
	send("truncated", b, map[string]string{"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": ghSign(b)[:40]}, 401, false, "", "")
	send("no signature", b, map[string]string{"Content-Type": "application/json", "X-GitHub-Event": "push"}, 401, false, "", "")
	del := push(strings.Repeat("0", 40), repo, map[string]any{"deleted": true, "before": shas[0]})
	send("branch deletion", del, gh(del, "push"), 200, false, "", "")
	upper := push(shas[1], repo, map[string]any{"n": 1})
	send("uppercase hex", upper, map[string]string{"Content-Type": "application/json", "X-GitHub-Event": "push",
		"X-Hub-Signature-256": "sha256=" + strings.ToUpper(strings.TrimPrefix(ghSign(upper), "sha256="))}, 200, true, shas[1], repo)
	form := []byte("payload=" + url.QueryEscape(string(push(shas[1], repo, map[string]any{"n": 2}))))
	send("form-encoded payload=", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push", "X-Hub-Signature-256": ghSign(form)}, 200, true, shas[1], repo)
	// A doubled header needs the raw request: net/http's Set keeps one.
	cases++
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/hook/deploy/web", f.hookPort), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Add("X-Hub-Signature-256", ghSign(b))
	req.Header.Add("X-Hub-Signature-256", ghSign(b))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("doubled signature header: %v %v", resp.StatusCode, err)
	}

	// Wait for every expected deploy, then a little longer for any that
	// should not have happened.
	expLines := 0
	for _, l := range logWant {
		expLines += strings.Count(l, "\n") + 1
	}
	var got []string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		raw, _ := os.ReadFile(f.path("out/deploy-log"))
		got = strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
		if len(got) >= expLines {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	raw, _ := os.ReadFile(f.path("out/deploy-log"))
	got = strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	var wantLines []string
	for _, l := range logWant {
		wantLines = append(wantLines, strings.Split(l, "\n")...)
	}
	sort.Strings(got)
	sort.Strings(wantLines)
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("deploy log\n got %q\nwant %q", got, wantLines)
	}
	if strings.Contains(string(raw), strings.Repeat("0", 40)) {
		t.Error("the deleted branch was deployed")
	}
	head, err := exec.Command("git", "-C", f.path("out/checkout"), "rev-parse", "HEAD").Output()
	if err != nil || strings.TrimSpace(string(head)) != shas[1] {
		t.Errorf("checkout at %q (%v), want the last valid push %s", head, err, shas[1])
	}
	f.canaryAbsent(t)
	t.Logf("GitHub deploy: %d cases (%d injections, %d delivery edge cases) held", cases, len(injections), cases-len(injections)-1)
}

// forgedHookEvents: an accepted minion fires events the reactor trusts
// for webhooks: the reserved tag itself, and look-alikes — NUL or other
// bytes where '/' belongs (before the fix in pkg/event a NUL-separated tag
// matched the reactor's salt/netapi/hook/* glob while passing the
// reserved-prefix check), case and spacing variants. None reaches the hook reaction; the
// control event on an ordinary tag does.
func forgedHookEvents(t *testing.T, f *contentFleet) (held, tried int) {
	raw := dialRawMinion(t, fmt.Sprintf("127.0.0.1:%d", f.port), "rawattacker")
	send := func(tag, n string) {
		t.Helper()
		d, _ := wireStruct(map[string]any{"n": n, "msg": "forged", "post": map[string]any{"n": n, "msg": "forged"}})
		if err := raw.sendEvent(tag, d); err != nil {
			t.Fatal(err)
		}
	}
	forged := []string{
		"salt/netapi/hook/ci/probe",
		"salt\x00netapi\x00hook\x00ci\x00probe",
		"salt/netapi\x00hook/ci/probe",
		"salt/netapi/hook/ci\x00probe",
		"Salt/netapi/hook/ci/probe",
		" salt/netapi/hook/ci/probe",
		"salt//netapi/hook/ci/probe",
		"salt\\netapi\\hook\\ci\\probe",
		"salt/netapi/hook/ci/probe\x00",
	}
	for i, tag := range forged {
		send(tag, fmt.Sprintf("forged%d", i))
	}
	send("probe/event", "control")
	if _, ok := f.waitFile("out/probe-control", 60*time.Second); !ok {
		t.Fatal("control case: the raw minion's ordinary event did not react")
	}
	time.Sleep(2 * time.Second)
	for i, tag := range forged {
		if _, err := os.Stat(f.path(fmt.Sprintf("out/probe-forged%d", i))); err == nil {
			t.Errorf("forged tag %q reached the webhook reaction", tag)
			continue
		}
		held++
	}
	return held, len(forged)
}
