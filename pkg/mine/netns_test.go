package mine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The address-change tests run a real Scheduler inside a network
// namespace. Moving a goroutine's thread with setns is not enough: the
// scheduler, its runner and the netlink reader all run on other threads.
// So the test binary re-executes itself under `ip netns exec`, where the
// whole process lives in the namespace, and reports each MineUpdate as a
// JSON line on stdout.
const (
	childEnv        = "BRINE_MINE_CHILD"
	childNetlinkEnv = "BRINE_MINE_CHILD_NETLINK"
	childPollEnv    = "BRINE_MINE_CHILD_POLL"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

func runChild() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	poll, err := time.ParseDuration(os.Getenv(childPollEnv))
	if err != nil {
		log.Error("bad poll", "err", err)
		return 2
	}
	specs, err := ParseFunctions(map[string]any{
		"network.ip_addrs":     []any{},
		"network.get_hostname": []any{},
		"test.ping":            nil,
	})
	if err != nil {
		log.Error("specs", "err", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // the parent closing stdin ends the child
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	pub := func(_ context.Context, data map[string]any, removed []string, replace bool) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(update{Data: data, Removed: removed, Replace: replace})
	}
	s := NewScheduler(specs, realRunner, pub, time.Hour, log)
	s.ChangePoll = poll
	s.NoNetlink = os.Getenv(childNetlinkEnv) != "1"
	if err := s.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

var nsSeq atomic.Int32

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// netns makes a namespace holding one end of a veth pair, named eth0, with
// 198.18.0.201/24, and removes it all when the test ends.
func netns(t *testing.T) string {
	t.Helper()
	n := nsSeq.Add(1)
	ns := fmt.Sprintf("brmine-%d-%d", os.Getpid(), n)
	host := fmt.Sprintf("brm%dh%d", os.Getpid(), n)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", ns, err, out)
		}
	})
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run(t, "ip", "netns", "exec", ns, "ip", "addr", "add", "198.18.0.201/24", "dev", "eth0")
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	return ns
}

type child struct {
	cmd    *exec.Cmd
	ups    chan update
	stderr *bytes.Buffer
	stdin  io.WriteCloser
}

// startChild runs the scheduler in ns, in a UTS namespace of its own so
// the test may change its hostname without touching the host's.
func startChild(t *testing.T, ns string, netlink bool, poll time.Duration) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "--uts", "--", exe)
	nl := "0"
	if netlink {
		nl = "1"
	}
	cmd.Env = append(os.Environ(), childEnv+"=1", childNetlinkEnv+"="+nl, childPollEnv+"="+poll.String())
	c := &child{cmd: cmd, ups: make(chan update, 16), stderr: &bytes.Buffer{}}
	cmd.Stderr = &lockedWriter{w: c.stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	go func() {
		defer close(c.ups)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var u update
			if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
				t.Errorf("child wrote %q: %v", sc.Text(), err)
				return
			}
			c.ups <- u
		}
	}()
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (c *child) next(t *testing.T, within time.Duration, what string) update {
	t.Helper()
	select {
	case u, ok := <-c.ups:
		if !ok {
			t.Fatalf("%s: child exited: %v\n%s", what, c.cmd.ProcessState, c.stderr)
		}
		return u
	case <-time.After(within):
		t.Fatalf("%s: no update within %v; child log:\n%s", what, within, c.stderr)
	}
	return update{}
}

func (c *child) quiet(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case u, ok := <-c.ups:
		if ok {
			t.Fatalf("%s: unexpected second update %+v", what, u)
		}
	case <-time.After(d):
	}
}

func TestHostChangeInNetns(t *testing.T) {
	tests := []struct {
		name     string
		netlink  bool
		poll     time.Duration
		within   time.Duration // how soon the change must be published
		hostname bool
	}{
		// The poll is long, so a publish within a second proves netlink.
		{name: "netlink", netlink: true, poll: time.Minute, within: time.Second},
		{name: "poll", netlink: false, poll: 500 * time.Millisecond, within: 3 * time.Second, hostname: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := netns(t)
			c := startChild(t, ns, tt.netlink, tt.poll)

			first := c.next(t, 10*time.Second, "initial refresh")
			if !first.Replace || !reflect.DeepEqual(first.Data["network.ip_addrs"], []any{"198.18.0.201"}) {
				t.Fatalf("initial refresh = %+v, want replace with [198.18.0.201]", first)
			}
			if got := keys(first.Data); !reflect.DeepEqual(got, []string{"network.get_hostname", "network.ip_addrs", "test.ping"}) {
				t.Fatalf("initial functions %v", got)
			}
			quietFor := 3 * tt.poll
			if tt.netlink {
				quietFor = 1500 * time.Millisecond
			}

			run(t, "ip", "netns", "exec", ns, "ip", "addr", "add", "198.18.0.202/24", "dev", "eth0")
			u := c.next(t, tt.within, "after address add")
			if u.Replace || len(u.Removed) != 0 || !reflect.DeepEqual(keys(u.Data), []string{"network.ip_addrs"}) {
				t.Fatalf("after add: %+v, want only network.ip_addrs", u)
			}
			if want := []any{"198.18.0.201", "198.18.0.202"}; !reflect.DeepEqual(u.Data["network.ip_addrs"], want) {
				t.Fatalf("after add: ip_addrs %v, want %v", u.Data["network.ip_addrs"], want)
			}
			c.quiet(t, quietFor, "after address add")

			// Deleting the secondary: removing the primary would take the
			// secondary with it unless promote_secondaries is set.
			run(t, "ip", "netns", "exec", ns, "ip", "addr", "del", "198.18.0.202/24", "dev", "eth0")
			u = c.next(t, tt.within, "after address del")
			if !reflect.DeepEqual(keys(u.Data), []string{"network.ip_addrs"}) ||
				!reflect.DeepEqual(u.Data["network.ip_addrs"], []any{"198.18.0.201"}) {
				t.Fatalf("after del: %+v, want only network.ip_addrs = [198.18.0.201]", u)
			}
			c.quiet(t, quietFor, "after address del")

			if !tt.hostname {
				return
			}
			newName := fmt.Sprintf("brmine-h%d", os.Getpid())
			run(t, "nsenter", "-t", fmt.Sprint(c.cmd.Process.Pid), "-u", "hostname", newName)
			u = c.next(t, tt.within, "after hostname change")
			if !reflect.DeepEqual(keys(u.Data), []string{"network.get_hostname"}) || u.Data["network.get_hostname"] != newName {
				t.Fatalf("after hostname change: %+v, want only network.get_hostname = %s", u, newName)
			}
			c.quiet(t, quietFor, "after hostname change")
			if h, _ := os.Hostname(); h == newName {
				t.Fatal("the host's own hostname changed")
			}
		})
	}
}
