package registry_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/registry"
	"github.com/brine-cm/brine/pkg/target"
)

var (
	benchOnce sync.Once
	benchReg  *registry.Registry
)

// benchRegistry holds 10,000 minions with grains shaped like Salt's core
// grains plus roles/env custom grains.
func benchRegistry(b *testing.B) *registry.Registry {
	benchOnce.Do(func() {
		r, err := registry.New()
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(42, 42))
		kinds := []string{"web", "db", "cache", "app", "lb"}
		roles := []string{"web", "db", "cache", "app", "lb", "mongodb_server", "queue", "search", "monitor", "build"}
		envs := []string{"prod", "staging", "dev"}
		oses := []struct{ os, family, release string }{
			{"Debian", "Debian", "12"}, {"Ubuntu", "Debian", "22.04"}, {"Rocky", "RedHat", "9.3"}, {"CentOS", "RedHat", "7.9.2009"},
		}
		for i := range 10000 {
			id := fmt.Sprintf("%s-%04d", kinds[i%len(kinds)], i)
			rs := []any{roles[rng.IntN(len(roles))]}
			if rng.IntN(2) == 0 {
				rs = append(rs, roles[rng.IntN(len(roles))])
			}
			o := oses[rng.IntN(len(oses))]
			ip := fmt.Sprintf("10.%d.%d.%d", rng.IntN(4), rng.IntN(256), 1+rng.IntN(254))
			g := map[string]any{
				"id": id, "host": id, "fqdn": id + ".example.com", "domain": "example.com",
				"os": o.os, "os_family": o.family, "osrelease": o.release, "kernel": "Linux",
				"kernelrelease": "6.1.0-18-amd64", "cpuarch": "x86_64", "num_cpus": float64(int(2) << rng.IntN(4)),
				"mem_total": float64(1024 * (1 + rng.IntN(64))), "virtual": "kvm",
				"cpu_model": "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz",
				"roles":     rs, "env": envs[rng.IntN(len(envs))],
				"ipv4": []any{"127.0.0.1", ip}, "ipv6": []any{"::1", fmt.Sprintf("fe80::%x", i)},
				"ip_interfaces": map[string]any{"lo": []any{"127.0.0.1", "::1"}, "eth0": []any{ip}},
				"saltversion":   "3006.9", "brineversion": "0.1.0",
			}
			if err := r.Upsert(registry.Minion{ID: id, Grains: g, Connected: true}); err != nil {
				b.Fatal(err)
			}
		}
		benchReg = r
	})
	return benchReg
}

func BenchmarkSelect(b *testing.B) {
	r := benchRegistry(b)
	cases := []struct {
		name string
		typ  target.Type
		expr string
	}{
		{"grain_eq", target.Grain, "roles:mongodb_server"},
		{"grain_eq_nested", target.Grain, "ip_interfaces:eth0:10.1.2.3"},
		{"glob_id_prefix", target.Glob, "web-*"},
		{"glob_id_scan", target.Glob, "*-004*"},
		{"compound", target.Compound, "G@roles:web and G@env:prod or L@a,b"},
		{"compound_grain_and_glob", target.Compound, "G@roles:db and web-*"},
		{"grain_glob_scan", target.Grain, "roles:mongodb_serv*"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			cpu0 := cpuTime()
			for b.Loop() {
				ids, err := r.Select(c.expr, c.typ)
				if err != nil {
					b.Fatal(err)
				}
				n = len(ids)
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(n), "minions")
		})
	}
}

// cpuTime is this process's user+system CPU time. The machine these
// benchmarks run on is shared, so wall-clock ns/op swings with other load;
// CPU time per op (GC included) is the steadier figure.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func BenchmarkUpsert(b *testing.B) {
	r := benchRegistry(b)
	g := map[string]any{"roles": []any{"web", "db"}, "env": "prod", "os": "Debian",
		"ipv4": []any{"127.0.0.1", "10.0.0.1"}, "ip_interfaces": map[string]any{"eth0": []any{"10.0.0.1"}}}
	cpu0 := cpuTime()
	for b.Loop() {
		if err := r.Upsert(registry.Minion{ID: "web-0042", Grains: g}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
}
