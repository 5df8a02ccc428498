package master

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestStormTrim: the free heap is returned once a burst of at least
// minStreams accepted streams has been quiet for quietFor: not while
// streams keep arriving, and not after a handful of reconnects.
func TestStormTrim(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bursts   []int         // streams per burst, each followed by a quiet period
		gap      time.Duration // between streams of a burst
		wantRuns int32
	}{
		{name: "a few reconnects", bursts: []int{3}, wantRuns: 0},
		{name: "a storm", bursts: []int{10}, wantRuns: 1},
		{name: "a slow storm is one", bursts: []int{12}, gap: 20 * time.Millisecond, wantRuns: 1},
		{name: "two storms", bursts: []int{10, 12}, wantRuns: 2},
		{name: "reconnects add up", bursts: []int{6, 6}, wantRuns: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs atomic.Int32
			tr := &stormTrim{quietFor: 50 * time.Millisecond, minStreams: 10, free: func() { runs.Add(1) }}
			for _, n := range tc.bursts {
				before := runs.Load()
				for i := 0; i < n; i++ {
					tr.streamOpened()
					time.Sleep(tc.gap)
				}
				if runs.Load() != before {
					t.Fatalf("trim ran while streams were arriving")
				}
				time.Sleep(200 * time.Millisecond)
			}
			if got := runs.Load(); got != tc.wantRuns {
				t.Fatalf("trim ran %d times, want %d", got, tc.wantRuns)
			}
		})
	}
}
