package job

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAddReturn measures returns/s into one job, with SyncReturns
// (two fsyncs per return) and without (the master's default).
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

// BenchmarkAddReturnParallel is the realistic shape: many minion streams
// answering the same job at once.
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
	b.SetParallelism(8) // 8 goroutines per GOMAXPROCS
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
