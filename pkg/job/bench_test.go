package job

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAddReturn measures returns/s into one job, each return made
// durable (two fsyncs) before AddReturn returns, as the master does.
func BenchmarkAddReturn(b *testing.B) {
	s, _ := openStore(b)
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
	s, _ := openStore(b)
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
