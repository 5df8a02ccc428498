package apply

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/brine-cm/brine/pkg/state"
	"github.com/brine-cm/brine/pkg/state/mongodb"
)

const initScript = `#!/bin/sh
PIDFILE="@DIR@/daemon.pid"
alive() {
	[ -f "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE")
	[ -r "/proc/$pid/stat" ] || return 1
	[ "$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)" != Z ]
}
echo "$1" >> "@DIR@/verbs.log"
case "$1" in
start) alive && exit 0; sleep 1000 >/dev/null 2>&1 </dev/null & echo $! > "$PIDFILE" ;;
stop) alive && kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE" ;;
restart) "$0" stop; "$0" start ;;
reload) alive || exit 7 ;;
status) alive && exit 0; exit 3 ;;
esac
`

func chunk(state_, fun, id, name string, args map[string]any, reqs ...state.Requisite) state.Chunk {
	return state.Chunk{ID: id, SLS: "site", State: state_, Fun: fun, Name: name, Args: args, Requisites: reqs}
}

func on(kind string, c state.Chunk) state.Requisite { return state.Requisite{Kind: kind, Key: c.Key()} }

// A small highstate on real files, a real init script and a real daemon:
// test mode changes nothing, the first run converges and fires the watch
// and onchanges, the second run changes nothing and fires nothing.
func TestHighstate(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("# static\n127.0.0.1 localhost"), 0o644)
	initDir := filepath.Join(dir, "init.d")
	os.Mkdir(initDir, 0o755)
	os.WriteFile(filepath.Join(initDir, "webd"), []byte(strings.ReplaceAll(initScript, "@DIR@", dir)), 0o755)
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "daemon.pid")); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// The service is already up: the config change must restart it.
	if out, err := exec.Command(filepath.Join(initDir, "webd"), "start").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.Remove(filepath.Join(dir, "verbs.log"))

	conf := chunk("file", "managed", "webconf", dir+"/etc/web/web.conf", map[string]any{
		"contents": []any{"listen 80", "workers 4"}, "mode": "0640", "makedirs": true})
	h1 := chunk("host", "present", "db", "db.internal", map[string]any{"ip": []any{"10.0.0.5", "fd00::5"}})
	h2 := chunk("host", "present", "cache", "cache.internal", map[string]any{"ip": "10.0.0.6"})
	rm := chunk("host", "absent", "old", "localhost", map[string]any{"ip": "10.9.9.9"})
	dirc := chunk("file", "directory", "logs", dir+"/var/log/web", map[string]any{"mode": 750, "makedirs": true})
	link := chunk("file", "symlink", "current", dir+"/current", map[string]any{"target": dir + "/etc/web"})
	reload := chunk("cmd", "run", "note", "echo reloaded >> "+dir+"/onchanges.log", nil, on(state.OnChanges, conf))
	guarded := chunk("cmd", "run", "init-db", "touch "+dir+"/db.initialized", map[string]any{"creates": dir + "/db.initialized"})
	svc := chunk("service", "running", "webd", "webd", nil, on(state.Watch, conf))
	chunks := []state.Chunk{conf, h1, h2, rm, dirc, link, reload, guarded, svc}
	env := &Env{HostsFile: hosts, InitDir: initDir, SystemdDir: filepath.Join(dir, "no-systemd"), Logger: quiet}
	ctx := context.Background()

	// Test mode: predictions, nothing touched.
	env.Test = true
	res := Run(ctx, env, Default(env), chunks)
	wantTest := map[string]string{"webconf": "nil", "db": "nil", "cache": "nil", "old": "true", "logs": "nil", "current": "nil",
		"note": "nil", "init-db": "nil", "webd": "nil"}
	assertResults(t, "test run", res, wantTest)
	if b, _ := os.ReadFile(hosts); string(b) != "# static\n127.0.0.1 localhost" {
		t.Fatalf("test run changed hosts: %q", b)
	}
	for _, p := range []string{dir + "/etc", dir + "/var", dir + "/current", dir + "/onchanges.log", dir + "/db.initialized"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("test run created %s", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "verbs.log")); strings.Contains(string(b), "restart") {
		t.Fatal("test run restarted the service")
	}

	// Real run.
	env.Test = false
	res = Run(ctx, env, Default(env), chunks)
	assertResults(t, "first run", res, map[string]string{"webconf": "true", "db": "true", "cache": "true", "old": "true",
		"logs": "true", "current": "true", "note": "true", "init-db": "true", "webd": "true"})
	byID := index(res)
	if byID["webconf"].Changes["diff"] != "New file" || byID["webconf"].Changes["mode"] != "0640" {
		t.Errorf("file changes %v", byID["webconf"].Changes)
	}
	if b, _ := os.ReadFile(dir + "/etc/web/web.conf"); string(b) != "listen 80\nworkers 4\n" {
		t.Errorf("web.conf %q", b)
	}
	if b, _ := os.ReadFile(hosts); string(b) != "# static\n127.0.0.1 localhost\n10.0.0.5\tdb.internal\nfd00::5\tdb.internal\n10.0.0.6\tcache.internal\n" {
		t.Errorf("hosts %q", b)
	}
	if got := js(byID["db"].Changes); got != `{"added":{"10.0.0.5":["db.internal"],"fd00::5":["db.internal"]}}` {
		t.Errorf("host changes %s", got)
	}
	if byID["webd"].Comment != "Service webd restarted" {
		t.Errorf("watch: %q", byID["webd"].Comment)
	}
	if byID["note"].Changes["retcode"] != 0 {
		t.Errorf("cmd changes %v", byID["note"].Changes)
	}
	if fi, err := os.Stat(dir + "/var/log/web"); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("directory %v %v", fi, err)
	}
	if tgt, _ := os.Readlink(dir + "/current"); tgt != dir+"/etc/web" {
		t.Errorf("symlink -> %q", tgt)
	}

	// Second run: converged, nothing fires.
	res = Run(ctx, env, Default(env), chunks)
	for _, r := range res {
		if resultString(r.Result) != "true" || len(r.Changes) != 0 {
			t.Errorf("second run %s: %s %v %q", r.ID, resultString(r.Result), r.Changes, r.Comment)
		}
	}
	byID = index(res)
	if byID["init-db"].Comment != "All files in creates exist" || !strings.Contains(byID["note"].Comment, "onchanges") {
		t.Errorf("comments %q %q", byID["init-db"].Comment, byID["note"].Comment)
	}
	if b, _ := os.ReadFile(dir + "/onchanges.log"); string(b) != "reloaded\n" {
		t.Errorf("onchanges ran %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "verbs.log")); strings.Count(string(b), "restart") != 1 {
		t.Errorf("verbs %q", b)
	}
}

func index(res []state.Result) map[string]state.Result {
	m := map[string]state.Result{}
	for _, r := range res {
		m[r.ID] = r
	}
	return m
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func assertResults(t *testing.T, what string, res []state.Result, want map[string]string) {
	t.Helper()
	for _, r := range res {
		if w, ok := want[r.ID]; ok && resultString(r.Result) != w {
			t.Errorf("%s: %s result %s, want %s: %q %v", what, r.ID, resultString(r.Result), w, r.Comment, r.Changes)
		}
	}
}

func TestCmdRunResults(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		c       state.Chunk
		test    bool
		result  string
		comment string
	}{
		{"fails on retcode", chunk("cmd", "run", "x", "exit 4", nil), false, "false", `Command "exit 4" run: retcode 4`},
		{"test mode", chunk("cmd", "run", "x", "touch "+dir+"/nope", nil), true, "nil", `Command "touch ` + dir + `/nope" would have been executed`},
		{"test mode evaluates unless", chunk("cmd", "run", "x", "false", map[string]any{"unless": "true"}), true, "true", "unless condition is true"},
		{"onlyif list", chunk("cmd", "run", "x", "false", map[string]any{"onlyif": []any{"true", "false"}}), false, "true", "onlyif condition is false"},
		{"env list of dicts and cwd", chunk("cmd", "run", "x", `test "$A$B" = 12 && test "$(pwd)" = `+dir, map[string]any{"env": []any{map[string]any{"A": 1}, map[string]any{"B": "2"}}, "cwd": dir}), false, "true", "run"},
		{"timeout", chunk("cmd", "run", "x", "sleep 5", map[string]any{"timeout": 0.2}), false, "false", "timed out"},
		{"bad env", chunk("cmd", "run", "x", "true", map[string]any{"env": "A=1"}), false, "false", `argument "env"`},
		{"cmd.wait alone does nothing", chunk("cmd", "wait", "x", "touch "+dir+"/waited", nil), false, "true", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := &Env{Test: c.test, Logger: quiet}
			r := Run(context.Background(), env, Default(env), []state.Chunk{c.c})[0]
			if resultString(r.Result) != c.result || !strings.Contains(r.Comment, c.comment) {
				t.Fatalf("%s %q %v", resultString(r.Result), r.Comment, r.Changes)
			}
		})
	}
	if _, err := os.Stat(dir + "/nope"); err == nil {
		t.Fatal("test mode ran the command")
	}
	if _, err := os.Stat(dir + "/waited"); err == nil {
		t.Fatal("cmd.wait ran without a watch")
	}
}

func TestArgumentErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		c    state.Chunk
		want string
	}{
		{chunk("file", "managed", "motd", dir+"/motd", map[string]any{"contents": "x", "mode": 493}), `file.managed "` + dir + `/motd" (id motd in sls site): argument "mode"`},
		{chunk("file", "managed", "motd", dir+"/motd", map[string]any{"source": "salt://motd"}), `argument "source": must be resolved by the master`},
		{chunk("file", "managed", "motd", dir+"/motd", map[string]any{"makedirs": "perhaps"}), `argument "makedirs": want True or False`},
		{chunk("host", "present", "h", "web", nil), "ip is required"},
		{chunk("file", "symlink", "l", dir+"/l", nil), `argument "target": is required`},
		{chunk("git", "latest", "g", "https://example.invalid/x.git", map[string]any{"target": dir + "/g", "identity": "/root/.ssh/id"}), `argument "identity"`},
		{chunk("pkg", "installed", "p", "x", map[string]any{"pkgs": "nginx"}), `argument "pkgs": want a list`},
		{chunk("mongodb", "replset", "rs", "rs0", map[string]any{"members": "a:1"}), `argument "members"`},
		{chunk("service", "running", "s", "../x", nil), "not valid"},
	}
	for _, c := range cases {
		env := &Env{Logger: quiet, HostsFile: dir + "/hosts"}
		r := Run(context.Background(), env, Default(env), []state.Chunk{c.c})[0]
		if resultString(r.Result) != "false" || !strings.Contains(r.Comment, c.want) {
			t.Errorf("%s: %s %q, want %q", c.c.ID, resultString(r.Result), r.Comment, c.want)
		}
	}
}

func TestGitLatestThroughRun(t *testing.T) {
	d := t.TempDir()
	git := func(dir string, a ...string) {
		c := exec.Command("git", append([]string{"-c", "user.name=b", "-c", "user.email=b@x", "-c", "init.defaultBranch=main"}, a...)...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", a, err, out)
		}
	}
	git(d, "init", "--quiet", "--bare", "origin.git")
	git(d, "init", "--quiet", "work")
	os.WriteFile(d+"/work/f", []byte("1"), 0o644)
	git(d+"/work", "add", "f")
	git(d+"/work", "commit", "--quiet", "-m", "c1")
	git(d+"/work", "push", "--quiet", "file://"+d+"/origin.git", "HEAD:main")
	c := chunk("git", "latest", "app", "file://"+d+"/origin.git", map[string]any{"target": d + "/app", "rev": "main", "force_reset": "remote-changes"})
	env := &Env{Logger: quiet}
	r := Run(context.Background(), env, Default(env), []state.Chunk{c})[0]
	if resultString(r.Result) != "true" || r.Changes["revision"] == nil {
		t.Fatalf("%+v", r)
	}
	if b, _ := os.ReadFile(d + "/app/f"); string(b) != "1" {
		t.Fatal("not cloned")
	}
}

func TestPkgInstalledTestMode(t *testing.T) {
	env := &Env{Test: true, Logger: quiet}
	res := Run(context.Background(), env, Default(env), []state.Chunk{
		chunk("pkg", "installed", "sh", "bash", nil),
		chunk("pkg", "installed", "tools", "tools", map[string]any{"pkgs": []any{"coreutils", map[string]any{"brine-no-such-pkg": "1.0"}}}),
	})
	if resultString(res[0].Result) != "true" || len(res[0].Changes) != 0 {
		t.Fatalf("bash: %+v", res[0])
	}
	if resultString(res[1].Result) != "nil" || js(res[1].Changes) != `{"brine-no-such-pkg":{"new":"1.0","old":""}}` {
		t.Fatalf("bogus: %+v", res[1])
	}
}

// fakeMongo stands in for a server so the adapter's argument handling
// and result shapes can be checked; the real driver is exercised in
// pkg/state/mongodb and in TestMongoLive.
type fakeMongo struct{ cfg mongodb.Config }

func (f *fakeMongo) Config(context.Context) (mongodb.Config, error) {
	if f.cfg == nil {
		return nil, mongodb.ErrNotInitialized
	}
	return f.cfg, nil
}
func (f *fakeMongo) Initiate(_ context.Context, c mongodb.Config) error { f.cfg = c; return nil }
func (f *fakeMongo) Reconfig(_ context.Context, c mongodb.Config) error { f.cfg = c; return nil }
func (f *fakeMongo) Close(context.Context) error                        { return nil }

func TestMongoReplsetAdapter(t *testing.T) {
	srv := &fakeMongo{}
	var dialed []string
	env := &Env{Logger: quiet, MongoDial: func(ctx context.Context, o mongodb.DialOptions) (mongodb.Client, error) {
		dialed = append(dialed, o.Host+"/"+o.User)
		return srv, nil
	}}
	c := chunk("mongodb", "replset", "rs", "rs0", map[string]any{
		"host": "db1:27017", "user": "admin",
		"members": []any{map[string]any{"_id": float64(1), "host": "db2:27017", "priority": 0}, map[string]any{"_id": 0, "host": "db1:27017"}},
	})
	r := Run(context.Background(), env, Default(env), []state.Chunk{c})[0]
	if resultString(r.Result) != "true" || !strings.Contains(r.Comment, "initiated") {
		t.Fatalf("%+v", r)
	}
	if got := mongodb.Summary(srv.cfg); js(got) != `["0:db1:27017","1:db2:27017"]` {
		t.Fatalf("members %v", got)
	}
	if dialed[0] != "db1:27017/admin" {
		t.Fatalf("dialed %v", dialed)
	}
	r = Run(context.Background(), env, Default(env), []state.Chunk{c})[0]
	if resultString(r.Result) != "true" || len(r.Changes) != 0 {
		t.Fatalf("second: %+v", r)
	}
}

// The real driver against a port nobody listens on: test mode cannot
// predict without the current config, and says so.
func TestMongoUnreachableInTestMode(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	env := &Env{Test: true, Logger: quiet}
	c := chunk("mongodb", "replset", "rs", "rs0", map[string]any{"host": addr, "timeout": 0.5, "members": []any{"db1:27017"}})
	r := Run(context.Background(), env, Default(env), []state.Chunk{c})[0]
	if resultString(r.Result) != "false" || !strings.Contains(r.Comment, addr) || !strings.Contains(r.Comment, "test=True still reads the current config") {
		t.Fatalf("%+v", r)
	}
}

// Salt's sig argument must reach the service module: Debian's uwsgi init
// script reports success for `status` whether or not anything runs, so a
// state that names sig trusts the process table instead.
func TestServiceSigArgument(t *testing.T) {
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{nil, ""},
		{map[string]any{"sig": "uwsgi --ini /etc/uwsgi/apps-enabled/app.ini"}, "uwsgi --ini /etc/uwsgi/apps-enabled/app.ini"},
	} {
		s, err := serviceModule{running: true}.spec(state.Chunk{State: "service", Fun: "running", Name: "uwsgi", Args: tc.args})
		if err != nil {
			t.Fatal(err)
		}
		if s.Sig != tc.want || !s.Running || s.Name != "uwsgi" {
			t.Errorf("args %v: spec %+v, want Sig %q", tc.args, s, tc.want)
		}
	}
}
