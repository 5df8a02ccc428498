package master_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
)

// TestNoGoroutineLeakAcrossReconnects connects and disconnects 50 real
// minions several times: every stream's goroutines (master and minion side,
// both in this process) must be gone once the minions are, or a master that
// sees minions come and go for months grows without bound.
func TestNoGoroutineLeakAcrossReconnects(t *testing.T) {
	const n, cycles = 50, 3
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutoAccept = true })
	settled := func() int {
		// Goroutines end asynchronously after a stream closes: take the
		// lowest count seen over a short while.
		low := runtime.NumGoroutine()
		for i := 0; i < 20; i++ {
			time.Sleep(50 * time.Millisecond)
			low = min(low, runtime.NumGoroutine())
		}
		return low
	}
	var counts []int
	for c := 0; c < cycles; c++ {
		var mins []*testMinion
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("leak-%02d", i)
			mins = append(mins, startMinion(t, id, port, filepath.Join(dir, id), map[string]any{"roles": []any{"leak"}},
				func(c *config.Minion) { c.MineChangePoll = -1 }))
		}
		waitFor(t, "all minions connected", 30*time.Second, func() bool {
			for _, m := range mins {
				if !m.Connected() {
					return false
				}
			}
			return true
		})
		p, err := tm.publishErr("*", "glob", "test.ping", nil, nil, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.returns) != n {
			t.Fatalf("cycle %d: %d returns of %d", c, len(p.returns), n)
		}
		for _, m := range mins {
			m.stop()
		}
		waitFor(t, "master to see every minion gone", 30*time.Second, func() bool {
			list, _ := tm.runner(t, "minions.list", []any{}, map[string]any{}).([]any)
			for _, e := range list {
				if mn, _ := e.(map[string]any); mn["connected"] == true {
					return false
				}
			}
			return true
		})
		counts = append(counts, settled())
	}
	t.Logf("goroutines after each cycle: %v", counts)
	// The first cycle may start lazily created workers (timers, pools);
	// after it the count must not grow with each cycle.
	if grown := counts[cycles-1] - counts[1]; grown > 10 {
		t.Fatalf("goroutines grew by %d over %d connect/disconnect cycles of %d minions: %v", grown, cycles-2, n, counts)
	}
}
