package netns

import (
	"context"
	"errors"
	"golang.org/x/sys/unix"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// skipOrFail fails loudly where namespaces cannot be made, unless the
// operator said BRINE_SKIP_NETNS=1.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) {
		if os.Getenv("BRINE_SKIP_NETNS") == "1" {
			t.Skipf("BRINE_SKIP_NETNS=1: %v", err)
		}
		t.Fatalf("%v (run as root with CAP_NET_ADMIN, or set BRINE_SKIP_NETNS=1 to skip)", err)
	}
	t.Fatal(err)
}

func needNetns(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		skipOrFail(t, err)
	}
}

func newFleet(t *testing.T) *Fleet {
	t.Helper()
	needNetns(t)
	HandleSignals()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := New(ctx, Options{Logf: t.Logf})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return f
}

func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	var found []string
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	out2, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	for _, l := range strings.Split(string(out)+string(out2), "\n") {
		if strings.Contains(l, prefix) {
			found = append(found, strings.TrimSpace(l))
		}
	}
	if _, err := os.Stat(filepath.Join(EtcNetns, prefix+"a")); err == nil {
		found = append(found, EtcNetns+"/"+prefix+"a")
	}
	return found
}

func TestFleetHostsTalkOnlyOverTheBridge(t *testing.T) {
	f := newFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := f.AddHost(ctx, "a", "# kept\n127.0.0.1 localhost\n")
	if err != nil {
		skipOrFail(t, err)
	}
	b, err := f.AddHost(ctx, "b", "127.0.0.1 localhost\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr.String() != "198.18.0.11" || b.Addr.String() != "198.18.0.12" {
		t.Fatalf("addresses %s %s", a.Addr, b.Addr)
	}

	ping := func(h *Host, to string) error {
		_, err := h.Run(ctx, "ping", "-c1", "-W1", to)
		return err
	}
	for _, c := range []struct {
		name string
		from *Host
		to   string
		ok   bool
	}{
		{"a to b", a, b.Addr.String(), true},
		{"b to the bridge", b, Gateway.String(), true},
		{"nothing routes off the subnet", a, "192.0.2.1", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := ping(c.from, c.to); (err == nil) != c.ok {
				t.Fatalf("ping %s from %s: %v, want ok=%v", c.to, c.from.Name, err, c.ok)
			}
		})
	}

	t.Run("own hostname and /etc/hosts", func(t *testing.T) {
		out, err := exec.Command(a.ArgvUTS("hostname")[0], a.ArgvUTS("hostname")[1:]...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "a" {
			t.Fatalf("hostname in a: %q %v", out, err)
		}
		got, err := a.Output(ctx, "cat", "/etc/hosts")
		if err != nil || got != "# kept\n127.0.0.1 localhost\n" {
			t.Fatalf("/etc/hosts in a: %q %v", got, err)
		}
		// Replaced by rename, as brine's host states do: the next command
		// in the namespace sees the new file.
		tmp := a.HostsFile() + ".new"
		os.WriteFile(tmp, []byte("198.18.0.12 b\n"), 0o644)
		if err := os.Rename(tmp, a.HostsFile()); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Output(ctx, "getent", "hosts", "b"); err != nil || strings.Fields(got)[0] != "198.18.0.12" {
			t.Fatalf("getent hosts b after replace: %q %v", got, err)
		}
		if routes, _ := a.Run(ctx, "ip", "route", "show", "default"); strings.TrimSpace(routes) != "" {
			t.Fatalf("default route in a: %q", routes)
		}
		if v6, _ := a.Run(ctx, "ip", "-6", "addr"); strings.TrimSpace(v6) != "" {
			t.Fatalf("IPv6 addresses in a: %q", v6)
		}
	})

	t.Run("link down cuts the host off, up restores it", func(t *testing.T) {
		if err := b.SetLink(ctx, false); err != nil {
			t.Fatal(err)
		}
		if ping(a, b.Addr.String()) == nil {
			t.Fatal("b answered with its link down")
		}
		if err := b.SetLink(ctx, true); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for ping(a, b.Addr.String()) != nil {
			if time.Now().After(deadline) {
				t.Fatal("b unreachable after link up")
			}
		}
	})

	t.Run("address change", func(t *testing.T) {
		to := netip.MustParseAddr("198.18.0.99")
		if err := b.ReplaceAddr(ctx, to); err != nil {
			t.Fatal(err)
		}
		got, err := b.Addrs(ctx)
		if err != nil || len(got) != 1 || got[0] != to {
			t.Fatalf("b's addresses: %v %v", got, err)
		}
		if err := ping(a, "198.18.0.99"); err != nil {
			t.Fatal(err)
		}
		if err := b.ReplaceAddr(ctx, netip.MustParseAddr("10.0.0.1")); err == nil {
			t.Fatal("an address outside 198.18.0.0/24 was accepted")
		}
	})

	t.Run("processes in the namespace", func(t *testing.T) {
		p, err := a.Start("sleeper", filepath.Join(t.TempDir(), "log"), nil, "sleep", "300")
		if err != nil {
			t.Fatal(err)
		}
		// ip netns exec enters the namespace a moment after it starts.
		want := " " + strconv.Itoa(p.Cmd.Process.Pid) + " "
		deadline := time.Now().Add(5 * time.Second)
		for {
			pids, _ := exec.Command("ip", "netns", "pids", a.NS).CombinedOutput()
			if strings.Contains(" "+strings.Join(strings.Fields(string(pids)), " ")+" ", want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d not in %s: %q", p.Cmd.Process.Pid, a.NS, pids)
			}
			time.Sleep(10 * time.Millisecond)
		}
		p.Stop(2 * time.Second)
		if p.Running() {
			t.Fatal("sleeper still running")
		}
	})

	// Close removes everything, even a process started behind the
	// harness's back (as an init script's daemon is).
	if err := exec.Command("ip", "netns", "exec", a.NS, "sh", "-c", "sleep 300 >/dev/null 2>&1 &").Run(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, f.Prefix); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// A crashed run leaves namespaces whose owner is dead; the next New
// sweeps them. A live owner's fleet is never touched.
func TestSweepRemovesOnlyDeadRuns(t *testing.T) {
	needNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Another test process (test/fleet) sweeps in New under the fleet
	// lock; hold it too, or that sweep removes this test's pretend crash.
	os.MkdirAll(RunDir, 0o755)
	lock, err := takeLock(ctx, filepath.Join(RunDir, "lock"), 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unix.Flock(int(lock.Fd()), unix.LOCK_UN); lock.Close() }()

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	const crashed, alive = "bfdead-", "bfa11e-"
	for _, c := range []struct {
		prefix string
		pid    int
	}{{crashed, dead.Process.Pid}, {alive, os.Getpid()}} {
		if err := os.MkdirAll(RunDir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(RunDir, c.prefix+"owner"), []byte(strconv.Itoa(c.pid)), 0o644)
		os.MkdirAll(filepath.Join(EtcNetns, c.prefix+"a"), 0o755)
		if err := run(ctx, "ip", "netns", "add", c.prefix+"a"); err != nil {
			t.Fatal(err)
		}
		if err := run(ctx, "ip", "link", "add", c.prefix+"br", "type", "bridge"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { removePrefix(context.Background(), alive); os.Remove(filepath.Join(RunDir, alive+"owner")) })
	if err := exec.Command("ip", "netns", "exec", crashed+"a", "sh", "-c", "sleep 300 >/dev/null 2>&1 &").Run(); err != nil {
		t.Fatal(err)
	}

	if err := Sweep(ctx, t.Logf); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, crashed); len(l) > 0 {
		t.Fatalf("crashed run not swept: %v", l)
	}
	if l := leftovers(t, alive); len(l) != 3 {
		t.Fatalf("live run touched, left: %v", l)
	}
}
