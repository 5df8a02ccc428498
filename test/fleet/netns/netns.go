// Package netns builds a throwaway fleet of hosts on one machine: each
// host is a Linux network namespace whose eth0 is one end of a veth pair,
// the other end enslaved to a bridge in the root namespace. Addresses are
// only ever taken from 198.18.0.0/24 (RFC 2544 benchmarking space): the
// bridge is 198.18.0.1, hosts are .11, .12, ... Nothing is routed off the
// machine: the namespaces get no default route and nothing here touches
// forwarding or NAT.
//
// Every object a fleet creates (namespaces, links, /etc/netns/<ns>
// directories) carries the fleet's prefix, "bf" + four hex digits + "-",
// so a later run can find and remove what a crashed run left behind
// (Sweep). A marker file in /run/brine-fleet names the live owner of each
// prefix, so a sweep never touches a fleet that is still running.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Subnet is the only address range a fleet uses.
var Subnet = netip.MustParsePrefix("198.18.0.0/24")

// Gateway is the bridge's address in the root namespace: the master
// listens here.
var Gateway = netip.MustParseAddr("198.18.0.1")

// firstHost is the last octet of the first host's address.
const firstHost = 11

// RunDir holds the run markers and the lock that keeps two fleets from
// putting 198.18.0.1 on two bridges at once.
const RunDir = "/run/brine-fleet"

// EtcNetns is where `ip netns exec` looks for per-namespace files that it
// bind-mounts over /etc.
const EtcNetns = "/etc/netns"

var prefixRe = regexp.MustCompile(`^(bf[0-9a-f]{4}-)`)

// ErrUnavailable means this process cannot create network namespaces
// (not root, no CAP_NET_ADMIN, no iproute2).
var ErrUnavailable = errors.New("network namespaces unavailable")

// Logf receives the harness's narration; nil is silent.
type Logf func(format string, args ...any)

// Fleet is one bridge and the hosts attached to it.
type Fleet struct {
	Prefix string // "bf1a2b-"
	Bridge string // bridge link name in the root namespace

	logf   Logf
	dir    string // per-host files
	ownDir bool   // dir was made by New and goes with Close
	lock   *os.File
	mu     sync.Mutex
	hosts  []*Host
	procs  []*Proc
	done   bool // closing or closed: no new processes

	closeOnce sync.Once
	closeErr  error
}

// Host is one network namespace on the fleet's bridge.
type Host struct {
	Name string     // logical name, also its hostname (web1)
	NS   string     // namespace name (bf1a2b-web1)
	Veth string     // bridge-side veth in the root namespace
	Addr netip.Addr // eth0's address when created

	fleet     *Fleet
	hostsFile string
}

// Options tune New.
type Options struct {
	Logf Logf
	// LockWait bounds how long New waits for another fleet on this
	// machine to finish (they would share 198.18.0.1). Default 3 minutes.
	LockWait time.Duration
	// Dir holds per-host files (<Dir>/<name>/hosts). Default: a new
	// temporary directory that Close removes.
	Dir string
}

// Available reports, without changing anything, whether New can work
// here: root (CAP_NET_ADMIN) and the ip and unshare commands.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: need root (CAP_NET_ADMIN, mount namespaces); running as uid %d", ErrUnavailable, os.Geteuid())
	}
	for _, bin := range []string{"ip", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrUnavailable, bin, err)
		}
	}
	return nil
}

// New sweeps leftovers of crashed runs, takes the machine-wide fleet lock
// and creates the bridge with 198.18.0.1/24.
func New(ctx context.Context, o Options) (*Fleet, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if o.LockWait == 0 {
		o.LockWait = 3 * time.Minute
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	lock, err := takeLock(ctx, filepath.Join(RunDir, "lock"), o.LockWait)
	if err != nil {
		return nil, err
	}
	f := &Fleet{logf: o.Logf, lock: lock, dir: o.Dir}
	if f.logf == nil {
		f.logf = func(string, ...any) {}
	}
	if f.dir == "" {
		if f.dir, err = os.MkdirTemp("", "brine-fleet-"); err != nil {
			f.unlock()
			return nil, fmt.Errorf("fleet dir: %w", err)
		}
		f.ownDir = true
	}
	if err := Sweep(ctx, f.logf); err != nil {
		f.logf("sweep of leftovers incomplete: %v", err)
	}
	var b [2]byte
	rand.Read(b[:])
	f.Prefix = "bf" + hex.EncodeToString(b[:]) + "-"
	f.Bridge = f.Prefix + "br"
	if err := os.WriteFile(filepath.Join(RunDir, f.Prefix+"owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		f.unlock()
		return nil, fmt.Errorf("run marker: %w", err)
	}
	register(f)
	steps := [][]string{
		{"ip", "link", "add", f.Bridge, "type", "bridge"},
		{"ip", "addr", "add", Gateway.String() + "/24", "dev", f.Bridge},
		{"ip", "link", "set", f.Bridge, "up"},
	}
	for i, s := range steps {
		if err := run(ctx, s...); err != nil {
			f.Close()
			if i == 0 {
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			return nil, err
		}
		if i == 0 {
			disableIPv6(f.Bridge)
		}
	}
	f.logf("bridge %s up with %s/24", f.Bridge, Gateway)
	return f, nil
}

func takeLock(ctx context.Context, path string, wait time.Duration) (*os.File, error) {
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("fleet lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(fd.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			fd.Close()
			return nil, fmt.Errorf("fleet lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			fd.Close()
			return nil, fmt.Errorf("fleet lock %s: another fleet has held it for %s", path, wait)
		}
		select {
		case <-ctx.Done():
			fd.Close()
			return nil, fmt.Errorf("fleet lock %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *Fleet) unlock() {
	if f.lock != nil {
		unix.Flock(int(f.lock.Fd()), unix.LOCK_UN)
		f.lock.Close()
		f.lock = nil
	}
}

// AddHost creates namespace <prefix><name> with eth0 at the next free
// address, lo up, IPv6 off (so no link-local addresses either), and its
// own /etc/hosts holding initialHosts: `ip netns exec` bind-mounts
// /etc/netns/<ns>/hosts over /etc/hosts for every command run in the
// namespace, and that is a symlink to HostsFile().
func (f *Fleet) AddHost(ctx context.Context, name, initialHosts string) (*Host, error) {
	f.mu.Lock()
	n := len(f.hosts)
	f.mu.Unlock()
	if !regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`).MatchString(name) {
		return nil, fmt.Errorf("host name %q: want 1-8 lower-case letters and digits (link names are capped at 15 bytes)", name)
	}
	addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(firstHost + n)})
	h := &Host{Name: name, NS: f.Prefix + name, Veth: f.Prefix + name, Addr: addr, fleet: f}
	f.mu.Lock()
	f.hosts = append(f.hosts, h)
	f.mu.Unlock()

	h.hostsFile = filepath.Join(f.dir, name, "hosts")
	if err := os.MkdirAll(filepath.Dir(h.hostsFile), 0o755); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	if err := os.WriteFile(h.hostsFile, []byte(initialHosts), 0o644); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	if err := os.MkdirAll(h.EtcDir(), 0o755); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	if err := os.Symlink(h.hostsFile, filepath.Join(h.EtcDir(), "hosts")); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	if err := run(ctx, "ip", "netns", "add", h.NS); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// Off before eth0 exists, so the new link inherits it from default.
	if err := h.sysctlOffIPv6(ctx); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"ip", "link", "add", h.Veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"ip", "link", "set", h.Veth, "master", f.Bridge},
		{"ip", "link", "set", h.Veth, "up"},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
		{"ip", "-n", h.NS, "addr", "add", addr.String() + "/24", "dev", "eth0"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
	}
	for i, s := range steps {
		if err := run(ctx, s...); err != nil {
			return nil, fmt.Errorf("host %s: %w", name, err)
		}
		if i == 0 {
			disableIPv6(h.Veth)
		}
	}
	f.logf("host %s: namespace %s, eth0 %s, bridge port %s", name, h.NS, addr, h.Veth)
	return h, nil
}

func (h *Host) sysctlOffIPv6(ctx context.Context) error {
	// /proc/sys/net is per network namespace of the reader, so the write
	// must happen inside it. Fixed text; nothing is interpolated.
	const script = "for k in all default lo; do echo 1 > /proc/sys/net/ipv6/conf/$k/disable_ipv6; done"
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return nil // kernel without IPv6
	}
	return run(ctx, "ip", "netns", "exec", h.NS, "sh", "-c", script)
}

func disableIPv6(link string) {
	os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", link, "disable_ipv6"), []byte("1"), 0o644)
}

// Hosts lists the hosts in the order they were added.
func (f *Fleet) Hosts() []*Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Host(nil), f.hosts...)
}

// HostsFile is the file that is /etc/hosts inside the namespace. Tools
// that replace /etc/hosts by rename must be pointed here: /etc/hosts is a
// bind mount inside the namespace, and rename(2) onto a mount point fails
// with EBUSY. Each `ip netns exec` resolves the symlink afresh, so it sees
// the file as last replaced; a process already running keeps the inode
// that was there when it started.
//
// It lives outside /etc/netns/<ns> because everything in that directory
// is bind-mounted over /etc, and a writer's lock or temp file beside the
// hosts file would be too (with a warning, as /etc has no such file).
func (h *Host) HostsFile() string { return h.hostsFile }

// EtcDir is /etc/netns/<ns>: every entry in it is bind-mounted over the
// /etc entry of the same name for commands run with `ip netns exec` (a
// directory such as init.d as well as a file), in a mount namespace of
// their own, so the machine's /etc is never touched.
func (h *Host) EtcDir() string { return filepath.Join(EtcNetns, h.NS) }

// Command is argv inside the namespace, ready to be given an Env.
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	a := h.Argv(argv...)
	return exec.CommandContext(ctx, a[0], a[1:]...)
}

// Argv is argv run inside the namespace (`ip netns exec NS argv...`).
func (h *Host) Argv(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", h.NS}, argv...)
}

// ArgvUTS is like Argv but also in a UTS namespace of its own whose
// hostname is the host's Name: `ip netns exec` shares the machine's
// hostname, and a fleet whose hosts all say the same hostname would not
// exercise network.get_hostname. The name is passed as an argument to a
// fixed script, never pasted into it.
func (h *Host) ArgvUTS(argv ...string) []string {
	return append(h.Argv("unshare", "--uts", "--", "sh", "-c", `hostname "$0" && exec "$@"`, h.Name), argv...)
}

// Run runs argv inside the namespace and returns its combined output;
// the error carries the output.
func (h *Host) Run(ctx context.Context, argv ...string) (string, error) {
	return output(ctx, h.Argv(argv...)...)
}

// Output runs argv inside the namespace and returns its standard output;
// the error carries standard error.
func (h *Host) Output(ctx context.Context, argv ...string) (string, error) {
	cmd := h.Command(ctx, argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("in %s: %s: %w: %s", h.Name, strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// SetLink takes the bridge-side veth down or up: from the host's view the
// cable is pulled, its own eth0 keeps its address.
func (h *Host) SetLink(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run(ctx, "ip", "link", "set", h.Veth, state)
}

// ReplaceAddr moves eth0 from its current 198.18.0.0/24 address to addr.
func (h *Host) ReplaceAddr(ctx context.Context, addr netip.Addr) error {
	if !Subnet.Contains(addr) {
		return fmt.Errorf("host %s: %s is outside %s", h.Name, addr, Subnet)
	}
	cur, err := h.Addrs(ctx)
	if err != nil {
		return err
	}
	// Old first: deleting a primary address also deletes the secondaries
	// of its subnet, so adding first would lose the new one.
	for _, a := range cur {
		if a != addr {
			if err := run(ctx, "ip", "-n", h.NS, "addr", "del", a.String()+"/24", "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	if err := run(ctx, "ip", "-n", h.NS, "addr", "replace", addr.String()+"/24", "dev", "eth0"); err != nil {
		return err
	}
	h.fleet.logf("host %s: eth0 %v -> %s", h.Name, cur, addr)
	return nil
}

// Addrs lists eth0's IPv4 addresses.
func (h *Host) Addrs(ctx context.Context) ([]netip.Addr, error) {
	out, err := output(ctx, "ip", "-n", h.NS, "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		return nil, err
	}
	return parseInet(out), nil
}

// parseInet reads the IPv4 addresses of `ip -o addr show` output.
func parseInet(out string) []netip.Addr {
	var addrs []netip.Addr
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		for i := 0; i+1 < len(fs); i++ {
			if fs[i] == "inet" {
				if p, err := netip.ParsePrefix(fs[i+1]); err == nil {
					addrs = append(addrs, p.Addr())
				}
			}
		}
	}
	return addrs
}

// parseLinks reads the link names of `ip -o link show` output
// ("3: name@peer: <FLAGS> ...").
func parseLinks(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimSuffix(fs[0], ":")); err != nil || !strings.HasSuffix(fs[0], ":") {
			continue
		}
		name := strings.TrimSuffix(fs[1], ":")
		name, _, _ = strings.Cut(name, "@")
		// The kernel refuses ':' and '/' in link names (dev_valid_name).
		if name != "" && !strings.ContainsAny(name, ":/") {
			names = append(names, name)
		}
	}
	return names
}

// Close stops every process the fleet started, kills anything else still
// inside its namespaces, and removes namespaces, links, /etc/netns dirs
// and the run marker. It is safe to call more than once and from several
// goroutines (t.Cleanup and a signal handler): every caller returns only
// once the teardown is complete.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() { f.closeErr = f.close() })
	return f.closeErr
}

func (f *Fleet) close() error {
	f.mu.Lock()
	f.done = true
	procs := append([]*Proc(nil), f.procs...)
	f.mu.Unlock()
	defer unregister(f)

	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(5 * time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := removePrefix(ctx, f.Prefix)
	os.Remove(filepath.Join(RunDir, f.Prefix+"owner"))
	if f.ownDir {
		os.RemoveAll(f.dir)
	}
	f.unlock()
	if err == nil {
		f.logf("fleet %s torn down", f.Prefix)
	}
	return err
}

// Sweep removes what fleets whose owner process is gone left behind:
// processes in their namespaces, the namespaces, bridge and veth links,
// /etc/netns dirs and markers.
func Sweep(ctx context.Context, logf Logf) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	prefixes := map[string]bool{}
	if out, err := output(ctx, "ip", "netns", "list"); err == nil {
		for _, l := range strings.Split(out, "\n") {
			if m := prefixRe.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
				prefixes[m[1]] = true
			}
		}
	}
	if out, err := output(ctx, "ip", "-o", "link", "show"); err == nil {
		for _, name := range parseLinks(out) {
			if m := prefixRe.FindStringSubmatch(name); m != nil {
				prefixes[m[1]] = true
			}
		}
	}
	for _, dir := range []string{EtcNetns, RunDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if m := prefixRe.FindStringSubmatch(e.Name()); m != nil {
				prefixes[m[1]] = true
			}
		}
	}
	var errs []error
	for p := range prefixes {
		if ownerAlive(p) {
			continue
		}
		logf("sweeping leftovers of crashed fleet %s", p)
		if err := removePrefix(ctx, p); err != nil {
			errs = append(errs, err)
		}
		os.Remove(filepath.Join(RunDir, p+"owner"))
	}
	return errors.Join(errs...)
}

func ownerAlive(prefix string) bool {
	b, err := os.ReadFile(filepath.Join(RunDir, prefix+"owner"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	return unix.Kill(pid, 0) == nil
}

// removePrefix deletes every object named with prefix. Processes still
// in a namespace are killed by pid first (`ip netns pids`); otherwise the
// namespace would outlive its name.
func removePrefix(ctx context.Context, prefix string) error {
	var errs []error
	out, _ := output(ctx, "ip", "netns", "list")
	for _, l := range strings.Split(out, "\n") {
		fs := strings.Fields(l)
		if len(fs) == 0 || !strings.HasPrefix(fs[0], prefix) {
			continue
		}
		ns := fs[0]
		for attempt := 0; attempt < 20; attempt++ {
			pids, _ := output(ctx, "ip", "netns", "pids", ns)
			if strings.TrimSpace(pids) == "" {
				break
			}
			for _, p := range strings.Fields(pids) {
				if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
					unix.Kill(pid, syscall.SIGKILL)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	out, _ = output(ctx, "ip", "-o", "link", "show")
	for _, name := range parseLinks(out) {
		if strings.HasPrefix(name, prefix) {
			// A veth whose namespace went away is already gone; the
			// error is only worth reporting if the link is still there.
			if err := run(ctx, "ip", "link", "del", name); err != nil {
				if _, serr := output(ctx, "ip", "link", "show", name); serr == nil {
					errs = append(errs, err)
				}
			}
		}
	}
	ents, _ := os.ReadDir(EtcNetns)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.RemoveAll(filepath.Join(EtcNetns, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, argv ...string) error {
	_, err := output(ctx, argv...)
	return err
}

func output(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return b.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(b.String()))
	}
	return b.String(), nil
}
