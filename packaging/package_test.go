// Package packaging_test builds the .deb packages with scripts/package.sh
// and checks them the way dpkg and systemd will use them: what lands where,
// which files are conffiles, that the units point at files the packages
// install, that systemd-analyze accepts the units, and a real dpkg
// install / upgrade / remove / purge into a scratch root, whose installed
// binaries and default configs then run a master and a minion.
package packaging_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var packages = []string{"brine-master", "brine-minion", "brinectl"}

// built is what one run of scripts/package.sh produced: the path of each
// package's .deb.
type built map[string]string

func buildPackages(t *testing.T) built {
	t.Helper()
	tmp := t.TempDir()
	dist := filepath.Join(tmp, "dist")
	// The first run compiles nfpm (go run module@version): about two minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/package.sh")
	cmd.Env = append(os.Environ(), "DIST="+dist, "BRINE_BIN="+filepath.Join(tmp, "bin"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	b := built{}
	for _, p := range packages {
		m, _ := filepath.Glob(filepath.Join(dist, p+"_*.deb"))
		if len(m) != 1 {
			t.Fatalf("want one %s_*.deb in %s, got %v\n%s", p, dist, m, out)
		}
		b[p] = m[0]
	}
	return b
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// entry is one line of `dpkg-deb -c`.
type entry struct{ mode, owner string }

// contents lists a .deb's files by absolute path (directories end in /).
func contents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	for _, l := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(l) // mode owner size date time path
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c %s: unexpected line %q", deb, l)
		}
		m[strings.TrimPrefix(f[5], ".")] = entry{mode: f[0], owner: f[1]}
	}
	return m
}

func TestDebPackages(t *testing.T) {
	debs := buildPackages(t)
	lists := map[string]map[string]entry{}
	for p, deb := range debs {
		lists[p] = contents(t, deb)
	}

	t.Run("control", func(t *testing.T) {
		version := regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+\+git[0-9]{14}\.[0-9a-f]{12}$`)
		var versions []string
		for _, p := range packages {
			f := strings.Fields(run(t, "dpkg-deb", "-f", debs[p], "Package", "Version", "Architecture"))
			if len(f) != 6 || f[1] != p || !version.MatchString(f[3]) || f[5] != runtime.GOARCH {
				t.Errorf("%s control fields: %q", p, f)
				continue
			}
			versions = append(versions, f[3])
		}
		if len(slices.Compact(versions)) != 1 {
			t.Errorf("packages of one build have different versions: %v", versions)
		}
	})

	t.Run("contents", func(t *testing.T) {
		tests := []struct{ pkg, path, mode string }{
			{"brine-master", "/usr/bin/brine-master", "-rwxr-xr-x"},
			{"brine-master", "/lib/systemd/system/brine-master.service", "-rw-r--r--"},
			{"brine-master", "/etc/brine/master", "-rw-r-----"},
			{"brine-master", "/var/lib/brine/master/", "drwx------"},
			{"brine-master", "/var/log/brine/", "drwxr-x---"},
			{"brine-master", "/usr/share/doc/brine-master/configuration.md", "-rw-r--r--"},
			{"brine-minion", "/usr/bin/brine-minion", "-rwxr-xr-x"},
			{"brine-minion", "/lib/systemd/system/brine-minion.service", "-rw-r--r--"},
			// The minion's file may carry autosign_token.
			{"brine-minion", "/etc/brine/minion", "-rw-------"},
			{"brine-minion", "/var/lib/brine/minion/", "drwx------"},
			{"brine-minion", "/var/log/brine/", "drwxr-x---"},
			{"brinectl", "/usr/bin/brinectl", "-rwxr-xr-x"},
		}
		for _, tc := range tests {
			e, ok := lists[tc.pkg][tc.path]
			switch {
			case !ok:
				t.Errorf("%s lacks %s", tc.pkg, tc.path)
			case e.mode != tc.mode || e.owner != "root/root":
				t.Errorf("%s %s: %s %s, want %s root/root", tc.pkg, tc.path, e.mode, e.owner, tc.mode)
			}
		}
		for path := range lists["brinectl"] {
			if !strings.HasSuffix(path, "/") && path != "/usr/bin/brinectl" {
				t.Errorf("brinectl ships %s; it is only the CLI", path)
			}
		}
	})

	tmp := t.TempDir()
	trees := map[string]string{}
	for _, p := range packages {
		trees[p] = filepath.Join(tmp, p)
		run(t, "dpkg-deb", "-x", debs[p], trees[p])
	}

	t.Run("conffiles", func(t *testing.T) {
		for _, p := range []string{"brine-master", "brine-minion"} {
			role := strings.TrimPrefix(p, "brine-")
			if got, want := run(t, "dpkg-deb", "-I", debs[p], "conffiles"), "/etc/brine/"+role+"\n"; got != want {
				t.Errorf("%s conffiles = %q, want %q", p, got, want)
			}
			shipped, err := os.ReadFile(filepath.Join(trees[p], "etc/brine", role))
			if err != nil {
				t.Fatal(err)
			}
			// The generated file, which pkg/config's tests keep up to date.
			repo, err := os.ReadFile(filepath.Join("etc/brine", role))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(shipped, repo) {
				t.Errorf("%s ships an /etc/brine/%s that is not packaging/etc/brine/%s", p, role, role)
			}
		}
	})

	t.Run("static binaries", func(t *testing.T) {
		for _, p := range packages {
			f, err := elf.Open(filepath.Join(trees[p], "usr/bin", p))
			if err != nil {
				t.Fatal(err)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked (CGO_ENABLED=0 missing)", p)
				}
			}
			f.Close()
		}
	})

	t.Run("units", func(t *testing.T) {
		tests := []struct {
			pkg string
			// want are directives that must be set to these values, absent
			// ones that must not be set at all.
			want   map[string]string
			absent []string
		}{
			{"brine-master", map[string]string{
				"Restart": "on-failure", "ExecReload": "/bin/kill -HUP $MAINPID",
				"ProtectSystem": "strict", "ReadWritePaths": "/var/lib/brine", "PrivateTmp": "yes",
				"NoNewPrivileges": "yes", "ProtectHome": "yes", "WantedBy": "multi-user.target",
			}, nil},
			{"brine-minion", map[string]string{
				"Restart": "on-failure", "KillMode": "process", "WantedBy": "multi-user.target",
			}, []string{"ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "ReadOnlyPaths",
				"CapabilityBoundingSet", "User", "ExecReload", "RestrictSUIDSGID"}},
		}
		for _, tc := range tests {
			t.Run(tc.pkg, func(t *testing.T) {
				unit := parseUnit(t, filepath.Join(trees[tc.pkg], "lib/systemd/system", tc.pkg+".service"))
				for k, v := range tc.want {
					if got := unit[k]; len(got) != 1 || got[0] != v {
						t.Errorf("%s=%q, want %q", k, got, v)
					}
				}
				for _, k := range tc.absent {
					if v, ok := unit[k]; ok {
						t.Errorf("%s=%q is set; the minion's states must be able to change the whole system", k, v)
					}
				}
				exe := strings.Fields(unit["ExecStart"][0])
				e, ok := lists[tc.pkg][exe[0]]
				if !ok || !strings.Contains(e.mode, "x") {
					t.Errorf("ExecStart %s is not an executable of %s", exe[0], tc.pkg)
				}
				i := slices.Index(exe, "--config")
				if i < 0 || i+1 >= len(exe) {
					t.Fatalf("ExecStart %q does not name its --config", exe)
				}
				confs := run(t, "dpkg-deb", "-I", debs[tc.pkg], "conffiles")
				if !slices.Contains(strings.Fields(confs), exe[i+1]) {
					t.Errorf("ExecStart reads %s, which is not a conffile of %s (%q)", exe[i+1], tc.pkg, confs)
				}
				for _, p := range strings.Fields(strings.Join(unit["ReadWritePaths"], " ")) {
					if _, ok := lists[tc.pkg][p+"/"]; !ok {
						t.Errorf("ReadWritePaths %s is not a directory of %s", p, tc.pkg)
					}
				}
				for _, d := range unit["Documentation"] {
					if _, ok := lists[tc.pkg][strings.TrimPrefix(d, "file:")]; !ok {
						t.Errorf("Documentation %s is not in %s", d, tc.pkg)
					}
				}
				// The master drains reactions for up to 30 s on SIGTERM.
				if tc.pkg == "brine-master" {
					if d, err := time.ParseDuration(strings.Join(unit["TimeoutStopSec"], "")); err != nil || d <= 30*time.Second {
						t.Errorf("TimeoutStopSec=%q, want more than the 30 s drain", unit["TimeoutStopSec"])
					}
				}
			})
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed (apt-get install systemd)")
		}
		// A root with both packages, the host's own units (for
		// multi-user.target and friends) and /bin/kill for ExecReload.
		root := filepath.Join(tmp, "verify")
		for _, p := range []string{"brine-master", "brine-minion"} {
			run(t, "dpkg-deb", "-x", debs[p], root)
		}
		hostUnits := "/lib/systemd/system"
		if _, err := os.Stat(hostUnits); err != nil {
			t.Skipf("no %s to resolve the units' dependencies: %v", hostUnits, err)
		}
		must(t, os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755))
		run(t, "cp", "-r", hostUnits, filepath.Join(root, "usr/lib/systemd/system"))
		must(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
		run(t, "cp", "/bin/kill", filepath.Join(root, "bin/kill"))
		// systemd-analyze only warns about unknown or malformed directives,
		// exit status 0: any output at all is a failure.
		out, err := exec.Command(sa, "verify", "--root="+root, "brine-master.service", "brine-minion.service").CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("dpkg lifecycle", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("dpkg --root installs files owned by root: run as root")
		}
		lifecycle(t, debs, tmp)
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// parseUnit reads a systemd unit into directive → values (every
// assignment, in order, across sections).
func parseUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s:%d: not a directive: %q", path, n, l)
		}
		m[strings.TrimSpace(k)] = append(m[strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	must(t, sc.Err())
	return m
}

// dpkgRoot is a scratch dpkg database and file system. Maintainer scripts
// run outside it (--force-script-chrootless, they find it in $DPKG_ROOT)
// with a systemctl on PATH that only records its arguments.
type dpkgRoot struct {
	dir, log, fakeSystemd string
	env                   []string
}

func newDpkgRoot(t *testing.T, base string, systemdRunning bool) *dpkgRoot {
	t.Helper()
	r := &dpkgRoot{dir: filepath.Join(base, "root"), log: filepath.Join(base, "systemctl.log"),
		fakeSystemd: filepath.Join(base, "run-systemd-system")}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/systemd/system/multi-user.target.wants"} {
		must(t, os.MkdirAll(filepath.Join(r.dir, d), 0o755))
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		must(t, os.WriteFile(filepath.Join(r.dir, f), nil, 0o644))
	}
	bin := filepath.Join(base, "fakebin")
	must(t, os.MkdirAll(bin, 0o755))
	must(t, os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\necho \"$*\" >> \"$SYSTEMCTL_LOG\"\n"), 0o755))
	must(t, os.WriteFile(r.log, nil, 0o644))
	if systemdRunning {
		must(t, os.MkdirAll(r.fakeSystemd, 0o755))
	}
	r.env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "SYSTEMCTL_LOG="+r.log,
		"BRINE_SYSTEMD_DIR="+r.fakeSystemd)
	return r
}

func (r *dpkgRoot) dpkg(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("dpkg", append([]string{"--root=" + r.dir, "--force-script-chrootless", "--force-confold"}, args...)...)
	cmd.Env = r.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// calls returns and clears what systemctl was asked since the last call.
func (r *dpkgRoot) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(r.log)
	must(t, err)
	must(t, os.WriteFile(r.log, nil, 0o644))
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (r *dpkgRoot) path(p string) string { return filepath.Join(r.dir, p) }

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func lifecycle(t *testing.T, debs built, tmp string) {
	t.Run("without systemd", func(t *testing.T) {
		r := newDpkgRoot(t, filepath.Join(tmp, "nosystemd"), false)
		r.dpkg(t, "-i", debs["brine-minion"])
		if c := r.calls(t); c != nil {
			t.Errorf("systemctl called while systemd is not running: %q", c)
		}
		if !exists(r.path("etc/brine/minion")) {
			t.Error("install did not put /etc/brine/minion in place")
		}
	})

	r := newDpkgRoot(t, filepath.Join(tmp, "systemd"), true)
	r.dpkg(t, "-i", debs["brinectl"], debs["brine-master"], debs["brine-minion"])
	c := r.calls(t)
	for _, want := range []string{"daemon-reload", "enable brine-master.service", "enable brine-minion.service"} {
		if !slices.Contains(c, want) {
			t.Errorf("install: systemctl %q not called; calls: %q", want, c)
		}
	}
	for _, call := range c {
		if strings.HasPrefix(call, "start") || strings.HasPrefix(call, "restart") {
			t.Errorf("install started a daemon (systemctl %s); it must wait for its configuration", call)
		}
	}
	for path, mode := range map[string]os.FileMode{
		"var/lib/brine/master": os.ModeDir | 0o700, "var/lib/brine/minion": os.ModeDir | 0o700,
		"var/log/brine": os.ModeDir | 0o750, "etc/brine/minion": 0o600, "etc/brine/master": 0o640,
	} {
		fi, err := os.Stat(r.path(path))
		if err != nil {
			t.Error(err)
		} else if fi.Mode() != mode {
			t.Errorf("installed /%s has mode %v, want %v", path, fi.Mode(), mode)
		}
	}

	t.Run("installed daemons run", func(t *testing.T) { runInstalled(t, r, tmp) })

	// The admin edits the conffile; an upgrade (here: the same version
	// again) keeps the edit and restarts a running daemon.
	edited := "master: salt.example.com\n"
	must(t, os.WriteFile(r.path("etc/brine/minion"), []byte(edited), 0o600))
	r.dpkg(t, "-i", debs["brine-minion"])
	if got, _ := os.ReadFile(r.path("etc/brine/minion")); string(got) != edited {
		t.Errorf("upgrade replaced the admin's /etc/brine/minion with\n%s", got)
	}
	if c := r.calls(t); !slices.Contains(c, "try-restart brine-minion.service") || slices.Contains(c, "enable brine-minion.service") {
		t.Errorf("upgrade: systemctl calls %q, want try-restart and no enable (the admin's choice stands)", c)
	}

	// remove: stopped; config, keys and the enable link stay.
	key := r.path("var/lib/brine/minion/pki/minion.pem")
	must(t, os.MkdirAll(filepath.Dir(key), 0o700))
	must(t, os.WriteFile(key, []byte("key"), 0o600))
	link := r.path("etc/systemd/system/multi-user.target.wants/brine-minion.service")
	must(t, os.Symlink("/lib/systemd/system/brine-minion.service", link))
	r.dpkg(t, "--remove", "brine-minion")
	if c := r.calls(t); !slices.Contains(c, "stop brine-minion.service") {
		t.Errorf("remove: systemctl calls %q, want stop", c)
	}
	for _, p := range []string{"etc/brine/minion", "var/lib/brine/minion/pki/minion.pem", "etc/systemd/system/multi-user.target.wants/brine-minion.service"} {
		if !exists(r.path(p)) {
			t.Errorf("remove deleted /%s; only purge may", p)
		}
	}
	if exists(r.path("usr/bin/brine-minion")) {
		t.Error("remove left /usr/bin/brine-minion")
	}

	// purge: everything of the minion goes, the master's files stay.
	r.dpkg(t, "--purge", "brine-minion")
	for _, p := range []string{"etc/brine/minion", "var/lib/brine/minion", "etc/systemd/system/multi-user.target.wants/brine-minion.service"} {
		if exists(r.path(p)) {
			t.Errorf("purge left /%s", p)
		}
	}
	for _, p := range []string{"etc/brine/master", "var/lib/brine/master", "var/log/brine", "usr/bin/brine-master"} {
		if !exists(r.path(p)) {
			t.Errorf("purging brine-minion removed brine-master's /%s", p)
		}
	}
}

// runInstalled runs the master and a minion from the dpkg root with the
// shipped default configs (only paths and ports overridden on the command
// line): the minion's key shows up pending in the installed brinectl, the
// master survives SIGHUP (the unit's ExecReload) and stops on SIGTERM.
func runInstalled(t *testing.T, r *dpkgRoot, tmp string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	data := filepath.Join(tmp, "run")
	sock := filepath.Join(data, "master", "control.sock")
	var mlog, nlog syncBuffer
	master := exec.Command(r.path("usr/bin/brine-master"), "--config", r.path("etc/brine/master"),
		"--data-dir", filepath.Join(data, "master"), "--interface", "127.0.0.1", "--port", fmt.Sprint(port))
	master.Stdout, master.Stderr = &mlog, &mlog
	must(t, master.Start())
	done := make(chan error, 1)
	go func() { done <- master.Wait() }()
	defer func() {
		master.Process.Kill()
		<-done
	}()
	alive := func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("brine-master exited: %v\n%s", err, mlog.String())
		default:
		}
		return true
	}
	waitFor(t, "the control socket", func() bool { return alive() && exists(sock) }, &mlog)

	minion := exec.Command(r.path("usr/bin/brine-minion"), "--config", r.path("etc/brine/minion"),
		"--id", "pkg-test", "--master", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", filepath.Join(data, "minion"))
	minion.Stdout, minion.Stderr = &nlog, &nlog
	must(t, minion.Start())
	defer func() {
		minion.Process.Signal(syscall.SIGTERM)
		minion.Wait()
	}()
	waitFor(t, "the minion's key to be pending", func() bool {
		alive()
		out, err := exec.Command(r.path("usr/bin/brinectl"), "--socket", sock, "key", "list", "--out", "json").Output()
		if err != nil {
			return false
		}
		var keys map[string][]string
		return json.Unmarshal(out, &keys) == nil && slices.Contains(keys["pending"], "pkg-test")
	}, &nlog)

	must(t, master.Process.Signal(syscall.SIGHUP))
	waitFor(t, "the reload to be logged", func() bool { return strings.Contains(mlog.String(), "configuration reloaded") }, &mlog)
	select {
	case err := <-done:
		t.Fatalf("master exited on SIGHUP: %v\n%s", err, mlog.String())
	default:
	}
	must(t, master.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		done <- err // for the deferred Kill/wait
		if err != nil {
			t.Errorf("master on SIGTERM: %v\n%s", err, mlog.String())
		}
	case <-time.After(45 * time.Second):
		t.Errorf("master did not stop within TimeoutStopSec after SIGTERM\n%s", mlog.String())
	}
}

// syncBuffer collects a daemon's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, ok func() bool, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
