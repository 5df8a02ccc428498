// Package test drives the real binaries the way the README does: build
// them, start a master and minions as processes, and operate the fleet
// with brinectl over the control socket.
package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/test/binaries"
)

func TestBinariesLikeTheReadme(t *testing.T) {
	bin := binaries.Build(t)
	dir := t.TempDir()
	port := binaries.FreePort(t)
	socket := filepath.Join(dir, "master", "control.sock")
	c := binaries.Ctl{T: t, Bin: filepath.Join(bin, "brinectl"), Socket: socket}

	// No master yet: a clear message, not a stack of gRPC errors.
	out, code := c.Run("key", "list")
	if code == 0 || !strings.Contains(out, "no master is running at "+socket) {
		t.Fatalf("missing master: exit %d, %q", code, out)
	}

	os.MkdirAll(filepath.Join(dir, "master"), 0o700)
	cfg := fmt.Sprintf("interface: 127.0.0.1\nport: %d\ndata_dir: %s\nmine_functions:\n  network.get_hostname: []\n", port, filepath.Join(dir, "master"))
	os.WriteFile(filepath.Join(dir, "master.yaml"), []byte(cfg), 0o600)
	binaries.Start(t, filepath.Join(dir, "master.log"), filepath.Join(bin, "brine-master"), "--config", filepath.Join(dir, "master.yaml"))
	binaries.Eventually(t, "control socket", 10*time.Second, func() bool { _, err := os.Stat(socket); return err == nil })

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
		binaries.Start(t, filepath.Join(dir, id+".log"), filepath.Join(bin, "brine-minion"), args...)
	}
	binaries.Eventually(t, "three pending keys", 15*time.Second, func() bool {
		k := c.JSON("key", "list").(map[string]any)
		return len(k["pending"].([]any)) == 3
	})
	if out, code := c.Run("key", "accept", "--all"); code != 0 {
		t.Fatalf("key accept --all: %d %s", code, out)
	}
	binaries.Eventually(t, "three connected minions", 15*time.Second, func() bool {
		n := 0
		for _, m := range c.JSON("minions").([]any) {
			if m.(map[string]any)["connected"] == true {
				n++
			}
		}
		return n == 3
	})
	got := c.JSON("run", "-G", "roles:web", "test.ping").(map[string]any)
	if len(got) != 2 || got["web1"] != true || got["web2"] != true {
		t.Fatalf("grain ping: %v", got)
	}
	got = c.JSON("run", "-C", "G@env:prod and not G@roles:web", "grains.get", "roles").(map[string]any)
	if len(got) != 1 || fmt.Sprint(got["db1"]) != "[mongodb_server mongo_primary]" {
		t.Fatalf("compound: %v", got)
	}
	got = c.JSON("run", "*", "cmd.run", "echo hi; echo err >&2", "--timeout", "20").(map[string]any)
	if len(got) != 3 {
		t.Fatalf("cmd.run on all: %v", got)
	}
	// A bad target is refused before anything is sent, with exit status 2.
	out, code = c.Run("run", "-C", "G@roles:web and (", "test.ping")
	if code != 2 {
		t.Fatalf("bad compound target: exit %d %q", code, out)
	}
	binaries.Eventually(t, "mine filled", 15*time.Second, func() bool {
		m := c.JSON("mine", "get", "*", "network.get_hostname").(map[string]any)
		return len(m) == 3
	})
	jobs := c.JSON("job", "list").([]any)
	if len(jobs) < 3 {
		t.Fatalf("job list: %v", jobs)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	binaries.Cleanup()
	os.Exit(code)
}
