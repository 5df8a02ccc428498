package master_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
)

// BenchmarkPingFanout measures one test.ping job through a real master to N
// real minions (in this process, over TLS on loopback), until every return
// is in. N defaults to 200; BRINE_BENCH_MINIONS changes it.
//
//	go test -run '^$' -bench PingFanout -benchtime 20x ./pkg/master/
func BenchmarkPingFanout(b *testing.B) {
	n := 200
	if s := os.Getenv("BRINE_BENCH_MINIONS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	port := freePortB(b)
	tm := startMasterB(b, filepath.Join(dir, "master"), port)
	var mins []*testMinion
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%05d", i)
		mins = append(mins, startMinionB(b, id, port, filepath.Join(dir, id)))
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		up := 0
		for _, m := range mins {
			if m.Connected() {
				up++
			}
		}
		if up == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d minions connected", up, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := tm.publishErr("*", "glob", "test.ping", nil, nil, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.returns) != n {
			b.Fatalf("%d returns of %d", len(p.returns), n)
		}
	}
	b.ReportMetric(float64(n), "minions")
}

// The test helpers take *testing.T; the benchmark wraps them via testing.TB.
func freePortB(b *testing.B) int {
	return freePort(b)
}

func startMasterB(b *testing.B, dir string, port int) *testMaster {
	return startMaster(b, dir, port, func(c *config.Master) { c.AutoAccept = true; c.MineFunctions = nil })
}

func startMinionB(b *testing.B, id string, port int, dir string) *testMinion {
	return startMinion(b, id, port, dir, map[string]any{"roles": []any{"bench"}}, func(c *config.Minion) { c.MineChangePoll = -1 })
}
