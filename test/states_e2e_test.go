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

// brinectl state commands against the real binaries: show_top, show_sls,
// pillar items, apply with test=True (nothing touched), apply (file
// written), and a failing state giving a non-zero exit.
func TestStateCommandsThroughBrinectl(t *testing.T) {
	bin := binaries.Build(t)
	dir := t.TempDir()
	port := binaries.FreePort(t)
	socket := filepath.Join(dir, "master", "control.sock")
	c := binaries.Ctl{T: t, Bin: filepath.Join(bin, "brinectl"), Socket: socket}
	target := filepath.Join(dir, "out", "motd")

	files := map[string]string{
		"states/top.sls":    "base:\n  '*':\n    - motd\n",
		"states/motd.sls":   fmt.Sprintf("motd:\n  file.managed:\n    - name: %s\n    - makedirs: True\n    - mode: '0640'\n    - contents: |\n        Welcome to {{ grains['id'] }} ({{ pillar['site'] }})\n", target),
		"states/broken.sls": "fails:\n  cmd.run:\n    - name: exit 7\n",
		"pillar/top.sls":    "base:\n  '*':\n    - site\n",
		"pillar/site.sls":   "site: ams1\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(text), 0o600)
	}
	os.MkdirAll(filepath.Join(dir, "master"), 0o700)
	cfg := fmt.Sprintf("interface: 127.0.0.1\nport: %d\ndata_dir: %s\nauto_accept: true\nfile_roots: {base: [%s]}\npillar_roots: {base: [%s]}\n",
		port, filepath.Join(dir, "master"), filepath.Join(dir, "states"), filepath.Join(dir, "pillar"))
	os.WriteFile(filepath.Join(dir, "master.yaml"), []byte(cfg), 0o600)
	binaries.Start(t, filepath.Join(dir, "master.log"), filepath.Join(bin, "brine-master"), "--config", filepath.Join(dir, "master.yaml"))
	binaries.Eventually(t, "control socket", 10*time.Second, func() bool { _, err := os.Stat(socket); return err == nil })
	binaries.Start(t, filepath.Join(dir, "web1.log"), filepath.Join(bin, "brine-minion"), "--config", "/dev/null", "--id", "web1",
		"--master", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", filepath.Join(dir, "web1"))
	binaries.Eventually(t, "web1 connected", 15*time.Second, func() bool {
		for _, m := range c.JSON("minions").([]any) {
			if m.(map[string]any)["connected"] == true {
				return true
			}
		}
		return false
	})

	top := c.JSON("state", "show_top", "web1").(map[string]any)
	if fmt.Sprint(top["web1"]) != "map[base:[motd]]" {
		t.Fatalf("show_top: %v", top)
	}
	if p := c.JSON("pillar", "items", "web1").(map[string]any); fmt.Sprint(p["web1"]) != "map[site:ams1]" {
		t.Fatalf("pillar items: %v", p)
	}
	sls := c.JSON("state", "show_sls", "web1", "motd").(map[string]any)
	if !strings.Contains(fmt.Sprint(sls["web1"]), "Welcome to web1 (ams1)") {
		t.Fatalf("show_sls: %v", sls)
	}

	out, code := c.Run("state", "apply", "web1", "test=True")
	if code != 0 || !strings.Contains(out, "motd") {
		t.Fatalf("test=True: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("test=True wrote the file")
	}
	out, code = c.Run("state", "highstate", "web1")
	if code != 0 || !strings.Contains(out, "Succeeded: 1 (changed=1)") {
		t.Fatalf("highstate: exit %d\n%s", code, out)
	}
	b, err := os.ReadFile(target)
	if err != nil || string(b) != "Welcome to web1 (ams1)\n" {
		t.Fatalf("managed file: %q %v", b, err)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	out, code = c.Run("state", "apply", "web1", "broken")
	if code == 0 || !strings.Contains(out, "Failed:") {
		t.Fatalf("failing state: exit %d\n%s", code, out)
	}
	out, code = c.Run("state", "apply", "web1", "no.such")
	if code == 0 || !strings.Contains(out, "no.such") {
		t.Fatalf("missing SLS: exit %d\n%s", code, out)
	}
}
