package master_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/event"
)

// BenchmarkCluster measures, with M masters (BRINE_BENCH_MASTERS, 3 by
// default: a cluster on embedded NATS; 1: a plain single master) and N
// minions per master (BRINE_BENCH_MINIONS, default 100) spread across
// them, all in this process over TLS on loopback:
//
//   - ping: one test.ping to every minion, published on the first master,
//     until every return is in there;
//
//   - events: every master publishes 2,000 events on its bus at once,
//     until a subscriber on every master has seen all of them (the rate
//     is events delivered per second, counted once per master).
//
//     BRINE_BENCH_MASTERS=3 BRINE_BENCH_MINIONS=1000 go test -run '^$' -bench Cluster -benchtime 10x ./pkg/master/
//     BRINE_BENCH_MASTERS=1 BRINE_BENCH_MINIONS=3000 go test -run '^$' -bench Cluster -benchtime 10x ./pkg/master/
func BenchmarkCluster(b *testing.B) {
	masters, n := 3, 100
	if s := os.Getenv("BRINE_BENCH_MASTERS"); s != "" {
		masters, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("BRINE_BENCH_MINIONS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	var ms []*testMaster
	if masters == 1 {
		ms = []*testMaster{startMaster(b, filepath.Join(dir, "master"), freePort(b), func(c *config.Master) { c.AutoAccept = true; c.MineFunctions = nil })}
	} else {
		ms = startClusterMasters(b, dir, masters, func(_ int, c *config.Master) { c.AutoAccept = true; c.MineFunctions = nil })
	}
	var mins []*testMinion
	for i := 0; i < masters*n; i++ {
		id := fmt.Sprintf("m%05d", i)
		mins = append(mins, startMinion(b, id, ms[i%masters].port, filepath.Join(dir, id), map[string]any{"roles": []any{"bench"}},
			func(c *config.Minion) { c.MineChangePoll = -1 }))
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		up := 0
		for _, m := range mins {
			if m.Connected() {
				up++
			}
		}
		if up == len(mins) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d minions connected", up, len(mins))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Connected here is not yet routable there: wait until the first
	// master reaches everyone.
	for {
		p, err := ms[0].publishErr("*", "glob", "test.ping", nil, nil, 30*time.Second)
		if err == nil && len(p.returns) == len(mins) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("warm-up ping: %d of %d returns (%v); offline %v, missing %v", len(p.returns), len(mins), err, p.started.GetOffline(), p.done.GetMissing())
		}
	}

	b.Run("ping", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := ms[0].publishErr("*", "glob", "test.ping", nil, nil, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if len(p.returns) != len(mins) {
				b.Fatalf("%d returns of %d", len(p.returns), len(mins))
			}
		}
		b.ReportMetric(float64(len(mins)), "minions")
	})

	b.Run("events", func(b *testing.B) {
		const per = 2000
		total := per * len(ms)
		delivered := 0
		start := time.Now()
		for i := 0; i < b.N; i++ {
			tag := fmt.Sprintf("bench/%d/*", i)
			subs := make([]*event.Subscription, len(ms))
			for j, tm := range ms {
				subs[j] = tm.Bus().Subscribe(tag, total+16)
			}
			var wg sync.WaitGroup
			for j, tm := range ms {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; k < per; k++ {
						tm.Bus().Publish(context.Background(), fmt.Sprintf("bench/%d/%d/%d", i, j, k), map[string]any{"k": k, "from": j})
					}
				}()
			}
			wg.Wait()
			for j, s := range subs {
				got := 0
				timeout := time.After(time.Minute)
				for got < total {
					select {
					case <-s.C:
						got++
					case <-timeout:
						b.Fatalf("master %d saw %d of %d events (dropped %d)", j, got, total, s.Dropped())
					}
				}
				delivered += got
				s.Close()
			}
		}
		b.ReportMetric(float64(delivered)/time.Since(start).Seconds(), "deliveries/s")
		b.ReportMetric(float64(total*b.N)/time.Since(start).Seconds(), "events/s")
	})
}
