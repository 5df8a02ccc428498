package master_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/master"
	"github.com/brine-cm/brine/pkg/minion"
)

// idleMinionsEnv makes the test binary a fleet of idle minions (see
// TestMain): the master under measurement is then alone in its process,
// so its goroutines and memory are counted without the minions'.
const idleMinionsEnv = "BRINE_TEST_IDLE_MINIONS" // "<port> <count> <dir>"

func TestMain(m *testing.M) {
	if spec := os.Getenv(idleMinionsEnv); spec != "" {
		os.Exit(runIdleMinions(spec))
	}
	os.Exit(m.Run())
}

// runIdleMinions connects count real minions (pkg/minion, TLS, signed
// handshake) to a master and keeps them until stdin closes.
func runIdleMinions(spec string) int {
	var port, count int
	var dir string
	if _, err := fmt.Sscanf(spec, "%d %d %s", &port, &count, &dir); err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", idleMinionsEnv, spec, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < count; i++ {
		cfg := config.DefaultMinion()
		cfg.ID = fmt.Sprintf("idle-%04d", i)
		cfg.Master = config.StringList{"127.0.0.1:" + strconv.Itoa(port)}
		cfg.DataDir = filepath.Join(dir, cfg.ID)
		cfg.HostsFile = filepath.Join(cfg.DataDir, "hosts")
		// The grains brine-bench's minions add to the host's own.
		cfg.Grains = map[string]any{"roles": []any{"idle"}, "env": fmt.Sprintf("e%02d", i/20)}
		cfg.MineChangePoll = -1 // no netlink socket per minion
		cfg.ReconDefault = 100
		cfg.ReconMax = 500
		mn, err := minion.New(cfg, quietLog())
		if err != nil {
			fmt.Fprintf(os.Stderr, "minion %s: %v\n", cfg.ID, err)
			cancel()
			return 1
		}
		wg.Add(1)
		go func() { defer wg.Done(); mn.Run(ctx) }()
	}
	io.Copy(io.Discard, os.Stdin)
	cancel()
	wg.Wait()
	return 0
}

// idleFleet is count minions in a child process, connected to tm.
func idleFleet(t testing.TB, tm *testMaster, count int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d %s", idleMinionsEnv, tm.port, count, t.TempDir()))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	waitFor(t, fmt.Sprintf("%d minions connected", count), 60*time.Second, func() bool { return connectedCount(t, tm) == count })
}

func connectedCount(t testing.TB, tm *testMaster) int {
	n := 0
	list, _ := tm.runner(t, "minions.list", []any{}, map[string]any{}).([]any)
	for _, e := range list {
		if mn, _ := e.(map[string]any); mn["connected"] == true {
			n++
		}
	}
	return n
}

// settledGoroutines is the lowest goroutine count seen over a short while:
// goroutines that finished their work end asynchronously.
func settledGoroutines() int {
	low := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		time.Sleep(50 * time.Millisecond)
		low = min(low, runtime.NumGoroutine())
	}
	return low
}

// grpcGoroutinesPerStream is what grpc-go itself runs for one server
// connection carrying one stream: the reader (HandleStreams), the writer
// (loopyWriter), the keepalive timer and the stream's handler.
const grpcGoroutinesPerStream = 4

// idleStackBudget is what the four goroutines' stacks of an idle stream
// may cost once the GC has shrunk them: the reader's and the handler's
// 8 KiB each, the writer's and the keepalive's 4 KiB at most. A handler
// whose parked frames reach a quarter of 16 KiB keeps 16 (docs/memory.md).
const idleStackBudget = 24 << 10

// TestIdleStreamCostsOnlyGRPCGoroutines: an idle accepted minion may cost
// the master gRPC's own goroutines and not one more, also after a job went
// out to it and its return was acknowledged (the send path's goroutine is
// gone once its queue is empty), and their stacks must shrink to
// idleStackBudget. Stacks are the largest item in the master's memory per
// minion.
func TestIdleStreamCostsOnlyGRPCGoroutines(t *testing.T) {
	const n = 25
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) {
		c.AutoAccept = true
		c.MineFunctions = map[string]any{"network.get_hostname": []any{}}
	})
	connectedCount(t, tm) // the control socket's own connection is part of the baseline
	before := measureMemory()
	base := before.goroutines
	idleFleet(t, tm, n)
	waitFor(t, "mine of every minion", 30*time.Second, func() bool {
		got, _ := tm.runner(t, "mine.get", []any{"*", "network.get_hostname"}, map[string]any{}).(map[string]any)
		return len(got) == n
	})
	check := func(when string) {
		t.Helper()
		got := settledGoroutines()
		per := float64(got-base) / n
		t.Logf("%s: %d goroutines, %d before the minions: %.2f per minion", when, got, base, per)
		if per > grpcGoroutinesPerStream+0.2 {
			t.Fatalf("%s: an idle minion costs %.2f goroutines on the master; gRPC's own are %d", when, per, grpcGoroutinesPerStream)
		}
	}
	check("idle")
	stack := float64(measureMemory().stack-before.stack) / n
	t.Logf("stacks: %.0f bytes per minion", stack)
	if !raceEnabled && stack > idleStackBudget {
		// The race detector's instrumented frames are larger; the
		// budget is for the binary that ships.
		t.Errorf("an idle minion's goroutines hold %.0f bytes of stack on the master, more than %d", stack, idleStackBudget)
	}
	p, err := tm.publishErr("*", "glob", "test.ping", nil, nil, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.returns) != n {
		t.Fatalf("test.ping: %d returns of %d", len(p.returns), n)
	}
	check("after a job")
}

// BenchmarkIdleMinionMemory reports what one idle connected minion costs
// the master (BRINE_BENCH_MINIONS minions, default 300, in a child
// process; after five GCs): live heap, heap spans in use, stacks, RSS and
// goroutines per minion. brine-bench measures the same on a separate
// master process at 1,000 and 10,000 (docs/memory.md).
func BenchmarkIdleMinionMemory(b *testing.B) {
	n := 300
	if s := os.Getenv("BRINE_BENCH_MINIONS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("BRINE_BENCH_MINIONS=%q: want a positive count", s)
		}
		n = v
	}
	dir := b.TempDir()
	port := freePort(b)
	tm := startMaster(b, filepath.Join(dir, "master"), port, func(c *config.Master) {
		c.AutoAccept = true
		c.MineFunctions = map[string]any{"network.ip_addrs": []any{}, "network.get_hostname": []any{}}
	})
	connectedCount(b, tm)
	before := measureMemory()
	b.ResetTimer()
	idleFleet(b, tm, n)
	b.StopTimer()
	time.Sleep(2 * time.Second) // the minions' first mine updates land
	after := measureMemory()
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	b.ReportMetric(per(after.heapAlloc, before.heapAlloc), "heap-B/minion")
	b.ReportMetric(per(after.heapInuse, before.heapInuse), "heapinuse-B/minion")
	b.ReportMetric(per(after.stack, before.stack), "stack-B/minion")
	b.ReportMetric(per(after.rss, before.rss), "rss-B/minion")
	b.ReportMetric(per(uint64(after.goroutines), uint64(before.goroutines)), "goroutines/minion")
}

type memSample struct {
	heapAlloc, heapInuse, stack, rss uint64
	goroutines                       int
}

func measureMemory() memSample {
	// Each GC halves a stack at most once: a handler grown to 64 KiB
	// opening its stream needs three to come down to 8.
	for range 5 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heapAlloc: ms.HeapAlloc, heapInuse: ms.HeapInuse, stack: ms.StackInuse, rss: vmRSS(), goroutines: settledGoroutines()}
}

// vmRSS is this process's resident set in bytes (Linux), 0 elsewhere.
func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// TestGOGCSetting: the master's gogc sets the collector's target unless
// the operator's GOGC environment variable is set; a negative one is
// refused by name.
func TestGOGCSetting(t *testing.T) {
	current := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	orig := current()
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for _, tc := range []struct {
		name    string
		gogc    int
		env     string
		want    int
		wantErr string
	}{
		{name: "set", gogc: 37, want: 37},
		{name: "zero keeps the runtime's", gogc: 0, want: 91},
		{name: "environment wins", gogc: 37, env: "91", want: 91},
		{name: "negative refused", gogc: -1, wantErr: "gogc -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.env)
			debug.SetGCPercent(91) // what the runtime took from the environment, say
			cfg := config.DefaultMaster()
			cfg.DataDir = t.TempDir()
			cfg.GOGC = tc.gogc
			m, err := master.New(cfg, master.Options{Logger: quietLog()})
			if err == nil {
				t.Cleanup(m.Stop)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := current(); got != tc.want {
				t.Fatalf("GC percent %d, want %d", got, tc.want)
			}
		})
	}
}
