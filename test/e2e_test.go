// Package test drives the real binaries the way the README does: build
// them, start a master and minions as processes, and operate the fleet
// with brinectl over the control socket.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds brine-master, brine-minion and brinectl once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "brine-e2e-bin")
		if buildErr != nil {
			return
		}
		for name, pkg := range map[string]string{"brine-master": "./cmd/master", "brine-minion": "./cmd/minion", "brinectl": "./cmd/ctl"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = ".."
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc starts a long-running binary whose output goes to a log file, and
// stops it at the end of the test.
func proc(t *testing.T, logPath string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s\n%s", logPath, b)
		}
	})
	return cmd
}

type ctl struct {
	t      *testing.T
	bin    string
	socket string
}

func (c ctl) run(args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--socket", c.socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("brinectl %v: %v", args, err)
	}
	return out.String() + errb.String(), code
}

func (c ctl) json(args ...string) any {
	c.t.Helper()
	out, code := c.run(append(args, "--out", "json")...)
	if code != 0 {
		c.t.Fatalf("brinectl %v: exit %d\n%s", args, code, out)
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("brinectl %v: not JSON: %v\n%s", args, err, out)
	}
	return v
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s: %s", d, what)
}

func TestBinariesLikeTheReadme(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	port := freePort(t)
	socket := filepath.Join(dir, "master", "control.sock")
	c := ctl{t: t, bin: filepath.Join(bin, "brinectl"), socket: socket}

	// No master yet: a clear message, not a stack of gRPC errors.
	out, code := c.run("key", "list")
	if code == 0 || !strings.Contains(out, "no master is running at "+socket) {
		t.Fatalf("missing master: exit %d, %q", code, out)
	}

	os.MkdirAll(filepath.Join(dir, "master"), 0o700)
	cfg := fmt.Sprintf("interface: 127.0.0.1\nport: %d\ndata_dir: %s\nmine_functions:\n  network.get_hostname: []\n", port, filepath.Join(dir, "master"))
	os.WriteFile(filepath.Join(dir, "master.yaml"), []byte(cfg), 0o600)
	proc(t, filepath.Join(dir, "master.log"), filepath.Join(bin, "brine-master"), "--config", filepath.Join(dir, "master.yaml"))
	eventually(t, "control socket", 10*time.Second, func() bool { _, err := os.Stat(socket); return err == nil })

	for id, grains := range map[string][]string{
		"web1": {"roles=[web]", "env=prod"},
		"web2": {"roles=[web]", "env=staging"},
		"db1":  {"roles=[mongodb_server, mongo_primary]", "env=prod"},
	} {
		args := []string{"--config", "/dev/null", "--id", id, "--master", fmt.Sprintf("127.0.0.1:%d", port),
			"--data-dir", filepath.Join(dir, id), "--hosts-file", filepath.Join(dir, id, "hosts")}
		for _, g := range grains {
			args = append(args, "--grain", g)
		}
		proc(t, filepath.Join(dir, id+".log"), filepath.Join(bin, "brine-minion"), args...)
	}
	eventually(t, "three pending keys", 15*time.Second, func() bool {
		k := c.json("key", "list").(map[string]any)
		return len(k["pending"].([]any)) == 3
	})
	if out, code := c.run("key", "accept", "--all"); code != 0 {
		t.Fatalf("key accept --all: %d %s", code, out)
	}
	eventually(t, "three connected minions", 15*time.Second, func() bool {
		n := 0
		for _, m := range c.json("minions").([]any) {
			if m.(map[string]any)["connected"] == true {
				n++
			}
		}
		return n == 3
	})
	got := c.json("run", "-G", "roles:web", "test.ping").(map[string]any)
	if len(got) != 2 || got["web1"] != true || got["web2"] != true {
		t.Fatalf("grain ping: %v", got)
	}
	got = c.json("run", "-C", "G@env:prod and not G@roles:web", "grains.get", "roles").(map[string]any)
	if len(got) != 1 || fmt.Sprint(got["db1"]) != "[mongodb_server mongo_primary]" {
		t.Fatalf("compound: %v", got)
	}
	got = c.json("run", "*", "cmd.run", "echo hi; echo err >&2", "--timeout", "20").(map[string]any)
	if len(got) != 3 {
		t.Fatalf("cmd.run on all: %v", got)
	}
	// A bad target is refused before anything is sent, with exit status 2.
	out, code = c.run("run", "-C", "G@roles:web and (", "test.ping")
	if code != 2 {
		t.Fatalf("bad compound target: exit %d %q", code, out)
	}
	eventually(t, "mine filled", 15*time.Second, func() bool {
		m := c.json("mine", "get", "*", "network.get_hostname").(map[string]any)
		return len(m) == 3
	})
	jobs := c.json("job", "list").([]any)
	if len(jobs) < 3 {
		t.Fatalf("job list: %v", jobs)
	}
}
