package service

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// initScript is a real LSB-style script: start forks `sleep` as the
// daemon and records its pid; status checks the pid is alive and not a
// zombie; every verb is logged so tests can tell restart from reload.
const initScript = `#!/bin/sh
PIDFILE="@DIR@/daemon.pid"
LOG="@DIR@/verbs.log"
alive() {
	[ -f "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE")
	[ -r "/proc/$pid/stat" ] || return 1
	state=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
	[ "$state" != Z ]
}
echo "$1" >> "$LOG"
case "$1" in
start)
	alive && exit 0
	sleep 1000 >/dev/null 2>&1 </dev/null &
	echo $! > "$PIDFILE"
	;;
stop)
	if alive; then kill "$(cat "$PIDFILE")"; fi
	rm -f "$PIDFILE"
	;;
restart)
	"$0" stop
	"$0" start
	;;
reload)
	alive || exit 7
	;;
status)
	alive && exit 0
	exit 3
	;;
*)
	exit 2
	;;
esac
`

type fixture struct {
	dir string
	mgr Manager
}

func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	dir := t.TempDir()
	initDir := filepath.Join(dir, "init.d")
	os.Mkdir(initDir, 0o755)
	script := strings.ReplaceAll(initScript, "@DIR@", dir)
	if err := os.WriteFile(filepath.Join(initDir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, mgr: Detect(filepath.Join(dir, "no-systemd"), initDir)}
	t.Cleanup(func() {
		if pid := f.pid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return f
}

func (f *fixture) pid() int {
	b, err := os.ReadFile(filepath.Join(f.dir, "daemon.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func (f *fixture) verbs() []string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "verbs.log"))
	var out []string
	for _, v := range strings.Fields(string(b)) {
		if v != "status" {
			out = append(out, v)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	if k := Detect(dir, "/x").Kind(); k != "systemd" {
		t.Fatalf("existing systemd dir -> %s", k)
	}
	if k := Detect(filepath.Join(dir, "missing"), "/x").Kind(); k != "sysvinit" {
		t.Fatalf("missing systemd dir -> %s", k)
	}
}

func TestRunningAndDead(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "brined")
	up := Spec{Name: "brined", Running: true}

	ch, comment, err := up.Check(ctx, f.mgr)
	if err != nil || ch["brined"] != true || comment != "Service brined is set to start" {
		t.Fatalf("check = %v %q %v", ch, comment, err)
	}
	if f.pid() != 0 {
		t.Fatal("Check started the service")
	}
	ch, comment, err = up.Apply(ctx, f.mgr)
	if err != nil || ch["brined"] != true || comment != "Started service brined" {
		t.Fatalf("apply = %v %q %v", ch, comment, err)
	}
	pid := f.pid()
	if !alive(pid) {
		t.Fatalf("daemon %d not running", pid)
	}
	if ch, comment, _ := up.Check(ctx, f.mgr); len(ch) != 0 || comment != "The service brined is already running" {
		t.Fatalf("second check = %v %q", ch, comment)
	}

	down := Spec{Name: "brined"}
	if ch, _, err := down.Apply(ctx, f.mgr); err != nil || ch["brined"] != true {
		t.Fatalf("dead = %v %v", ch, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatalf("daemon %d survived service.dead", pid)
	}
	if ch, _, _ := down.Check(ctx, f.mgr); len(ch) != 0 {
		t.Fatalf("dead twice changes %v", ch)
	}
	if got := strings.Join(f.verbs(), ","); got != "start,stop" {
		t.Fatalf("verbs %s", got)
	}
}

func TestWatch(t *testing.T) {
	cases := []struct {
		name      string
		spec      Spec
		startedUp bool
		test      bool
		wantVerbs string
		samePID   bool
		comment   string
	}{
		{"restart", Spec{Name: "brined", Running: true}, true, false, "start,restart,stop,start", false, "Service brined restarted"},
		{"reload", Spec{Name: "brined", Running: true, Reload: true}, true, false, "start,reload", true, "Service brined reloaded"},
		{"start when down", Spec{Name: "brined", Running: true}, false, false, "start", false, "Service brined started"},
		{"test mode only says", Spec{Name: "brined", Running: true}, true, true, "start", true, "Service brined is set to be restarted"},
		{"dead stops", Spec{Name: "brined"}, true, false, "start,stop", false, "Service brined stopped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "brined")
			if c.startedUp {
				if err := f.mgr.Start(ctx, "brined"); err != nil {
					t.Fatal(err)
				}
			}
			before := f.pid()
			ch, comment, err := c.spec.Watch(ctx, f.mgr, c.test)
			if err != nil {
				t.Fatal(err)
			}
			if ch["brined"] != true || comment != c.comment {
				t.Fatalf("watch = %v %q", ch, comment)
			}
			if got := strings.Join(f.verbs(), ","); got != c.wantVerbs {
				t.Fatalf("verbs %s, want %s", got, c.wantVerbs)
			}
			if c.samePID != (before == f.pid()) {
				t.Fatalf("pid %d -> %d", before, f.pid())
			}
		})
	}
}

func TestEnabledReadsRCLinks(t *testing.T) {
	rc := t.TempDir()
	m := SysV{InitDir: "/nonexistent", RCDir: rc}
	if on, _ := m.Enabled(context.Background(), "brined"); on {
		t.Fatal("enabled without links")
	}
	os.Mkdir(filepath.Join(rc, "rc2.d"), 0o755)
	os.Symlink("../init.d/brined", filepath.Join(rc, "rc2.d", "S01brined"))
	if on, _ := m.Enabled(context.Background(), "brined"); !on {
		t.Fatal("S link not seen")
	}
	// enable: False with an S link present plans a change.
	off := false
	sp := Spec{Name: "brined", Enable: &off}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "brined"), []byte("#!/bin/sh\nexit 3\n"), 0o755)
	m.InitDir = dir
	ch, comment, err := sp.Check(context.Background(), m)
	if err != nil || ch["enabled"] != false || !strings.Contains(comment, "disabled") {
		t.Fatalf("check = %v %q %v", ch, comment, err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "brined")
	cases := []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "../../bin/sh", Running: true}, "not valid"},
		{Spec{Name: "-x", Running: true}, "not valid"},
		{Spec{Name: "missing", Running: true}, "no init script"},
	}
	for _, c := range cases {
		if _, _, err := c.spec.Check(ctx, f.mgr); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.spec.Name, err, c.want)
		}
	}
	// A script whose start does not bring the service up fails the state.
	os.WriteFile(filepath.Join(f.dir, "init.d", "broken"), []byte("#!/bin/sh\n[ \"$1\" = status ] && exit 3\nexit 0\n"), 0o755)
	if _, _, err := (Spec{Name: "broken", Running: true}).Apply(ctx, f.mgr); err == nil || !strings.Contains(err.Error(), "failed to start") {
		t.Fatalf("err = %v", err)
	}
}

// lyingScript is shaped like Debian's uwsgi script under sysvinit:
// "status" without an instance name exits 0 whatever runs.
const lyingScript = `#!/bin/sh
PIDFILE="@DIR@/daemon.pid"
echo "$1" >> "@DIR@/verbs.log"
case "$1" in
start)
	sleep @SIG@ >/dev/null 2>&1 </dev/null &
	echo $! > "$PIDFILE"
	;;
stop|restart|reload)
	[ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")"
	rm -f "$PIDFILE"
	[ "$1" = restart ] && exec "$0" start
	[ "$1" = reload ] && exit 1
	exit 0
	;;
status)
	echo "which one? ... failed!"
	exit 0
	;;
esac
`

func TestSigOverridesLyingStatus(t *testing.T) {
	dir := t.TempDir()
	initDir := filepath.Join(dir, "init.d")
	os.Mkdir(initDir, 0o755)
	// A unique sleep length is the process's signature.
	sig := "1000." + strconv.Itoa(os.Getpid()) + strconv.Itoa(int(time.Now().UnixNano()%100000))
	script := strings.NewReplacer("@DIR@", dir, "@SIG@", sig).Replace(lyingScript)
	if err := os.WriteFile(filepath.Join(initDir, "appsrv"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	mgr := Detect(filepath.Join(dir, "no-systemd"), initDir)
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "daemon.pid")); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	ctx := context.Background()

	for _, tc := range []struct {
		name        string
		sig         string
		wantChanges bool
	}{
		{"status alone is fooled", "", false},
		{"sig sees nothing runs", "sleep " + sig, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, comment, err := Spec{Name: "appsrv", Running: true, Sig: tc.sig}.Check(ctx, mgr)
			if err != nil {
				t.Fatal(err)
			}
			if (len(ch) > 0) != tc.wantChanges {
				t.Errorf("changes %v (%s), want changes: %v", ch, comment, tc.wantChanges)
			}
		})
	}

	spec := Spec{Name: "appsrv", Running: true, Sig: "sleep " + sig}
	if ch, comment, err := spec.Apply(ctx, mgr); err != nil || ch["appsrv"] != true {
		t.Fatalf("apply: %v %s %v", ch, comment, err)
	}
	if up, err := SigRunning(ProcRoot, spec.Sig); err != nil || !up {
		t.Fatalf("after start, %q not found: %v", spec.Sig, err)
	}
	if ch, comment, err := spec.Check(ctx, mgr); err != nil || len(ch) != 0 {
		t.Errorf("after start: %v %s %v", ch, comment, err)
	}
	// With sig, a watch on a stopped service starts it rather than
	// sending a reload that has nothing to reach.
	if err := mgr.Stop(ctx, "appsrv"); err != nil {
		t.Fatal(err)
	}
	reload := Spec{Name: "appsrv", Running: true, Reload: true, Sig: spec.Sig}
	ch, comment, err := reload.Watch(ctx, mgr, false)
	if err != nil || !strings.Contains(comment, "started") {
		t.Fatalf("watch on a stopped service: %v %q %v", ch, comment, err)
	}
}
