package job

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchWorkers is how many goroutines the parallel benchmarks run: a
// fan-out's returns arrive from many minion streams at once, far more
// than there are cores.
const benchWorkers = 16

func setBenchParallelism(b *testing.B) {
	b.SetParallelism((benchWorkers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
}

// BenchmarkAddReturn measures returns/s into one job from one goroutine,
// with SyncReturns and without (the master's default).
func BenchmarkAddReturn(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) { benchAddReturn(b, sync) })
	}
}

func benchAddReturn(b *testing.B, sync bool) {
	s, _ := openStore(b)
	s.SyncReturns = sync
	jid := NewJID(time.Now())
	mustSave(b, s, sampleJob(jid))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := s.AddReturn(ctx, sampleReturn(jid, fmt.Sprintf("minion%08d", i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "returns/s")
}

// BenchmarkAddReturnParallel is the fan-out shape: 16 goroutines, each a
// different minion, answering the same job at once.
func BenchmarkAddReturnParallel(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) { benchAddReturnParallel(b, sync) })
	}
}

func benchAddReturnParallel(b *testing.B, sync bool) {
	s, _ := openStore(b)
	s.SyncReturns = sync
	jid := NewJID(time.Now())
	mustSave(b, s, sampleJob(jid))
	ctx := context.Background()
	var n atomic.Int64
	setBenchParallelism(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := s.AddReturn(ctx, sampleReturn(jid, fmt.Sprintf("minion%08d", i))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "returns/s")
}

// BenchmarkSaveJob is a publisher saving one new job after another, as
// the reactor does for a stream of webhooks.
func BenchmarkSaveJob(b *testing.B) {
	s, _ := openStore(b)
	ctx := context.Background()
	base := time.Now()
	i := 0
	for b.Loop() {
		if err := s.SaveJob(ctx, sampleJob(jidAt(base.Add(time.Duration(i)*time.Microsecond)))); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkSaveJobParallel is 16 publishers (control socket, reactor,
// scheduler) saving jobs at once.
func BenchmarkSaveJobParallel(b *testing.B) {
	s, _ := openStore(b)
	ctx := context.Background()
	base := time.Now()
	var n atomic.Int64
	setBenchParallelism(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := s.SaveJob(ctx, sampleJob(jidAt(base.Add(time.Duration(i)*time.Microsecond)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "jobs/s")
}
