// Package cluster drives real brine-master processes as one cluster:
// three masters on loopback with embedded NATS JetStream, minions spread
// across them, one master killed with SIGKILL; and two masters on an
// external nats-server (Debian's package) started by the test.
package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/brine-cm/brine/test/binaries"
)

type masterProc struct {
	name, dir string
	port      int
	hookPort  int
	cmd       *exec.Cmd
	ctl       binaries.Ctl
}

// startMasters writes a config per master (clusterBlock gives each its
// cluster: section) and starts them all before waiting for any: a fresh
// cluster needs a majority up before a master finishes starting.
func startMasters(t *testing.T, bin, dir string, names []string, extra string, clusterBlock func(i int) string) []*masterProc {
	t.Helper()
	var ms []*masterProc
	for i, name := range names {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o700)
		mp := &masterProc{name: name, dir: d, port: binaries.FreePort(t), hookPort: binaries.FreePort(t)}
		mp.ctl = binaries.Ctl{T: t, Bin: filepath.Join(bin, "brinectl"), Socket: filepath.Join(d, "control.sock")}
		cfg := fmt.Sprintf("interface: 127.0.0.1\nport: %d\ndata_dir: %s\nauto_accept: true\nlog_level: debug\n"+
			"webhook:\n  listen: 127.0.0.1:%d\n  allow_unauthenticated: true\n%s%s",
			mp.port, d, mp.hookPort, extra, clusterBlock(i))
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		mp.cmd = binaries.Start(t, filepath.Join(dir, name+".log"), filepath.Join(bin, "brine-master"), "--config", path)
		ms = append(ms, mp)
	}
	for _, mp := range ms {
		binaries.Eventually(t, mp.name+" serving brinectl", 60*time.Second, func() bool {
			_, code := mp.ctl.Run("status")
			return code == 0
		})
	}
	return ms
}

// startMinion runs a minion whose master list is masters, in order.
func startMinion(t *testing.T, bin, dir, id string, masters []*masterProc, grains map[string]string) {
	t.Helper()
	d := filepath.Join(dir, id)
	os.MkdirAll(d, 0o700)
	var addrs []string
	for _, mp := range masters {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", mp.port))
	}
	cfg := fmt.Sprintf("id: %s\nmaster: [%s]\ndata_dir: %s\nhosts_file: %s\nlog_level: debug\n", id, strings.Join(addrs, ", "), d, filepath.Join(d, "hosts"))
	if len(grains) > 0 {
		cfg += "grains:\n"
		for k, v := range grains {
			cfg += fmt.Sprintf("  %s: %s\n", k, v)
		}
	}
	path := filepath.Join(dir, id+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	binaries.Start(t, filepath.Join(dir, id+".log"), filepath.Join(bin, "brine-minion"), "--config", path)
}

func postHook(t *testing.T, port int, path, delivery string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/hook/%s", port, path), strings.NewReader(`{"ref": "refs/heads/main"}`))
	req.Header.Set("Content-Type", "application/json")
	if delivery != "" {
		req.Header.Set("X-GitHub-Delivery", delivery)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /hook/%s: %v", path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(b.String()))
}

func lines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// TestKillOneMaster: three masters, two minions on each; SIGKILL master B
// with a job running on its minions and a webhook just accepted by it.
// Its minions move to another master within seconds, the job's returns
// still reach the caller on A, the hook is reacted to once, and the next
// job reaches every minion.
func TestKillOneMaster(t *testing.T) {
	bin := binaries.Build(t)
	dir := t.TempDir()
	reacted := filepath.Join(dir, "reacted.txt")
	// The reaction appends a fixed line on minion m-a1: nothing from the
	// hook reaches the shell.
	sls := fmt.Sprintf("deploy:\n  local.cmd.run:\n    - tgt: m-a1\n    - arg:\n      - echo reacted >> %s\n", reacted)
	os.WriteFile(filepath.Join(dir, "deploy.sls"), []byte(sls), 0o644)
	extra := fmt.Sprintf("reactor:\n  - 'salt/netapi/hook/deploy':\n    - %s\n", filepath.Join(dir, "deploy.sls"))

	names := []string{"A", "B", "C"}
	var routes, nats []string
	for range names {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", binaries.FreePort(t)))
		nats = append(nats, fmt.Sprintf("127.0.0.1:%d", binaries.FreePort(t)))
	}
	ms := startMasters(t, bin, dir, names, extra, func(i int) string {
		return fmt.Sprintf("cluster:\n  name: kill\n  nats_listen: %s\n  routes_listen: %s\n  routes: [%s]\n", nats[i], routes[i], strings.Join(routes, ", "))
	})
	a, b, c := ms[0], ms[1], ms[2]

	// Each minion's list starts with its own master and fails over in
	// order: B's minions go to C.
	for i, mp := range ms {
		order := []*masterProc{mp, ms[(i+1)%3], ms[(i+2)%3]}
		for j := 1; j <= 2; j++ {
			id := fmt.Sprintf("m-%s%d", strings.ToLower(mp.name), j)
			startMinion(t, bin, dir, id, order, map[string]string{"home": mp.name})
		}
	}
	all := "[m-a1 m-a2 m-b1 m-b2 m-c1 m-c2]"
	binaries.Eventually(t, "A sees all six minions connected", 60*time.Second, func() bool { return fmt.Sprint(a.ctl.Connected()) == all })
	if got := a.ctl.JSON("run", "*", "grains.get", "home", "--timeout", "20").(map[string]any); len(got) != 6 || got["m-b1"] != "B" || got["m-c2"] != "C" {
		t.Fatalf("job from A before the kill: %v", got)
	}

	// A job on B's minions that outlives B.
	type result struct {
		out  string
		code int
	}
	slow := make(chan result, 1)
	go func() {
		out, code := a.ctl.Run("run", "-L", "m-b1,m-b2", "cmd.run", "sleep 4; echo finished", "--timeout", "60", "--out", "json")
		slow <- result{out, code}
	}()
	time.Sleep(1500 * time.Millisecond) // sent through B, running on its minions

	// A hook accepted by B, then B dies before anything else.
	if got := postHook(t, b.hookPort, "deploy", "kill-guid-1"); !strings.HasPrefix(got, "200 ") || strings.Contains(got, "replayed") {
		t.Fatalf("hook on B: %s", got)
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()

	// Moved: a job from A reaches them on their new master.
	for {
		out, code := a.ctl.Run("run", "-L", "m-b1,m-b2", "test.ping", "--timeout", "3", "--out", "json")
		var got map[string]any
		if code == 0 && json.Unmarshal([]byte(out), &got) == nil && got["m-b1"] == true && got["m-b2"] == true {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("B's minions never answered through another master: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	moved := time.Since(killed)
	t.Logf("B's minions answered through another master %.1fs after SIGKILL", moved.Seconds())
	if moved > 20*time.Second {
		t.Fatalf("minions took %s to move", moved)
	}

	// The slow job's returns, finished after B died, still reach A.
	select {
	case r := <-slow:
		var got map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.out), &got) != nil || got["m-b1"] != "finished" || got["m-b2"] != "finished" {
			t.Fatalf("job running when B was killed: exit %d\n%s", r.code, r.out)
		}
	case <-time.After(70 * time.Second):
		t.Fatal("the slow job never finished")
	}

	// The hook B accepted is reacted to once, by A or C.
	binaries.Eventually(t, "the hook accepted by B reacted to", 60*time.Second, func() bool { return lines(reacted) >= 1 })
	time.Sleep(3 * time.Second)
	if n := lines(reacted); n != 1 {
		t.Fatalf("hook reacted to %d times", n)
	}
	// Its delivery id is still known: a retry on A is a replay.
	if got := postHook(t, a.hookPort, "deploy", "kill-guid-1"); !strings.Contains(got, "replayed") {
		t.Fatalf("retry of the delivery on A: %s", got)
	}

	// The next job, from A and from C, reaches all six.
	for _, mp := range []*masterProc{a, c} {
		got := mp.ctl.JSON("run", "*", "test.ping", "--timeout", "20").(map[string]any)
		if len(got) != 6 {
			t.Fatalf("test.ping from %s after the kill: %v", mp.name, got)
		}
		for id, v := range got {
			if v != true {
				t.Fatalf("%s from %s: %v", id, mp.name, v)
			}
		}
	}
	// The job cache lists the slow job with both returns, on C too.
	binaries.Eventually(t, "C's job list shows the slow job with both returns", 30*time.Second, func() bool {
		for _, j := range c.ctl.JSON("job", "list").([]any) {
			if jm := j.(map[string]any); jm["fun"] == "cmd.run" && jm["tgt_type"] == "list" && jm["minions"] == float64(2) && jm["returned"] == float64(2) {
				return true
			}
		}
		return false
	})

	// B comes back (same data_dir: same JetStream identity, new instance)
	// and is one of the cluster again: its jobs reach every minion.
	binaries.Start(t, filepath.Join(dir, "B-restarted.log"), filepath.Join(bin, "brine-master"), "--config", filepath.Join(dir, "B.yaml"))
	binaries.Eventually(t, "B serving again", 60*time.Second, func() bool { _, code := b.ctl.Run("status"); return code == 0 })
	binaries.Eventually(t, "a job from the restarted B reaches all six", 60*time.Second, func() bool {
		out, code := b.ctl.Run("run", "*", "test.ping", "--timeout", "5", "--out", "json")
		var got map[string]any
		return code == 0 && json.Unmarshal([]byte(out), &got) == nil && len(got) == 6
	})
}

// TestExternalNATS: two masters share an existing NATS server (Debian's
// nats-server package, JetStream on) instead of embedding one. A key
// accepted on one master lets the minion in on the other, a job from
// either reaches both minions, and the mine and a webhook behave as on
// embedded NATS.
func TestExternalNATS(t *testing.T) {
	natsBin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatal("this test runs Debian's nats-server: apt-get install -y nats-server")
	}
	bin := binaries.Build(t)
	dir := t.TempDir()
	port := binaries.FreePort(t)
	binaries.Start(t, filepath.Join(dir, "nats-server.log"), natsBin, "-js", "-sd", filepath.Join(dir, "nats-store"), "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-n", "external")
	binaries.Eventually(t, "nats-server listening", 20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	reacted := filepath.Join(dir, "reacted.txt")
	sls := fmt.Sprintf("deploy:\n  local.cmd.run:\n    - tgt: e-1\n    - arg:\n      - echo reacted >> %s\n", reacted)
	os.WriteFile(filepath.Join(dir, "deploy.sls"), []byte(sls), 0o644)
	extra := fmt.Sprintf("mine_functions:\n  network.get_hostname: []\nreactor:\n  - 'salt/netapi/hook/deploy':\n    - %s\n", filepath.Join(dir, "deploy.sls"))
	ms := startMasters(t, bin, dir, []string{"E1", "E2"}, extra, func(int) string {
		return fmt.Sprintf("cluster:\n  name: ext\n  nats_urls: [nats://127.0.0.1:%d]\n", port)
	})
	e1, e2 := ms[0], ms[1]
	startMinion(t, bin, dir, "e-1", []*masterProc{e1}, nil)
	startMinion(t, bin, dir, "e-2", []*masterProc{e2}, nil)
	binaries.Eventually(t, "E1 sees both minions connected", 60*time.Second, func() bool { return fmt.Sprint(e1.ctl.Connected()) == "[e-1 e-2]" })
	for _, mp := range ms {
		got := mp.ctl.JSON("run", "*", "test.ping", "--timeout", "20").(map[string]any)
		if len(got) != 2 || got["e-1"] != true || got["e-2"] != true {
			t.Fatalf("test.ping from %s: %v", mp.name, got)
		}
	}
	binaries.Eventually(t, "E2's mine shows E1's minion", 30*time.Second, func() bool {
		out, code := e2.ctl.Run("mine", "get", "e-1", "network.get_hostname", "--out", "json")
		return code == 0 && strings.Contains(out, "e-1")
	})
	// Keys are shared: rejecting on E2 cuts e-1 off on E1 (a rejected key
	// stays out even with auto_accept), accepting it on E1 lets it back.
	if out, code := e2.ctl.Run("key", "reject", "e-1"); code != 0 {
		t.Fatalf("key reject on E2: %d %s", code, out)
	}
	binaries.Eventually(t, "E1 drops e-1", 20*time.Second, func() bool { return fmt.Sprint(e1.ctl.Connected()) == "[e-2]" })
	if out, code := e1.ctl.Run("key", "accept", "e-1"); code != 0 {
		t.Fatalf("key accept on E1: %d %s", code, out)
	}
	binaries.Eventually(t, "e-1 back", 30*time.Second, func() bool { return fmt.Sprint(e2.ctl.Connected()) == "[e-1 e-2]" })

	if got := postHook(t, e2.hookPort, "deploy", "ext-guid"); !strings.HasPrefix(got, "200 ") {
		t.Fatalf("hook on E2: %s", got)
	}
	if got := postHook(t, e1.hookPort, "deploy", "ext-guid"); !strings.Contains(got, "replayed") {
		t.Fatalf("replay on E1: %s", got)
	}
	binaries.Eventually(t, "hook reacted to", 30*time.Second, func() bool { return lines(reacted) >= 1 })
	time.Sleep(2 * time.Second)
	if n := lines(reacted); n != 1 {
		t.Fatalf("hook reacted to %d times", n)
	}
	st := e1.ctl.JSON("status").(map[string]any)["cluster"].(map[string]any)
	if st["replicas"] != float64(1) || st["embedded"] != false || len(st["masters"].([]any)) != 2 {
		t.Fatalf("status on E1: %v", st)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	binaries.Cleanup()
	os.Exit(code)
}
