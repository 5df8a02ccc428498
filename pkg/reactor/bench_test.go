package reactor

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func benchBody(i int64) []byte {
	return []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":"%040d","repository":{"clone_url":"https://git.example/app.git"}}`, i))
}

// BenchmarkHookToPublish is the latency of one signed hook over real HTTP
// until the master's PublishAsync is called: webhook HMAC check, spool
// write with fsync, Jinja render with salt['hook.verify_github'], YAML,
// publish.
func BenchmarkHookToPublish(b *testing.B) {
	local := &fakeLocal{notify: make(chan call, 1)}
	s := newStack(b, local, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// after must not be forty zeros: such a push deploys nothing.
		body := benchBody(int64(i) + 1)
		if status, _ := s.post(b, "/hook/deploy/app", body, fmt.Sprint("bench-", i), sign(ghSecret, body)); status != 200 {
			b.Fatalf("status %d", status)
		}
		select {
		case <-local.notify:
		case <-time.After(10 * time.Second):
			b.Fatal("no publish")
		}
	}
}

// BenchmarkHooksPerSecond sends signed hooks to one hook path (one tag,
// so every reaction is ordered behind the previous one) from 16
// concurrent clients over real HTTP, and reports sustained hooks/s, all
// reacted to, and the latency from each request's start to its job's
// publish (p50, p99). The Local is a fake: this is the hook path alone,
// without the master's job cache.
func BenchmarkHooksPerSecond(b *testing.B) {
	sent := make([]atomic.Int64, b.N+1)
	var mu sync.Mutex
	lat := make([]float64, 0, b.N)
	local := &fakeLocal{onCall: func(c call) {
		now := time.Now().UnixNano()
		rev, _ := c.Kwargs["pillar"].(map[string]any)["deploy"].(map[string]any)["rev"].(string)
		i, err := strconv.Atoi(rev)
		if err != nil || i <= 0 || i > b.N {
			b.Errorf("unexpected job %+v", c)
			return
		}
		mu.Lock()
		lat = append(lat, float64(now-sent[i].Load())/1e6)
		mu.Unlock()
	}}
	s := newStack(b, local, nil)
	var seq atomic.Int64
	b.SetParallelism(8) // 16 clients on 2 cores, as brine-bench sends
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			body := benchBody(i)
			sent[i].Store(time.Now().UnixNano())
			if status, _ := s.post(b, "/hook/deploy/app", body, fmt.Sprint("bench-", i), sign(ghSecret, body)); status != 200 {
				b.Errorf("status %d", status)
				return
			}
		}
	})
	for local.n.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "hooks/s")
	mu.Lock()
	sort.Float64s(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	mu.Unlock()
}

// BenchmarkRenderCodeDeploy is the reactor file alone: Jinja (with the
// signature check) and YAML, no I/O but reading the file.
func BenchmarkRenderCodeDeploy(b *testing.B) {
	dir := b.TempDir()
	r, err := New(Config{SpoolDir: dir, Secrets: map[string]string{"github": writeFile(b, dir, "gh", ghSecret)}}, nil, &fakeLocal{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	data := pushData(b, pushBody(b, ""))
	file := repoFile(b, "states/reactor/code-deploy.sls")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rs, err := r.render(file, "salt/netapi/hook/deploy/web", data)
		if err != nil || len(rs) != 1 {
			b.Fatal(rs, err)
		}
	}
}
