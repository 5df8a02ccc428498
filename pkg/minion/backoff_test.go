package minion

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestBackoffWindows: the window doubles from recon_default to recon_max;
// with recon_randomize each wait lies in [0, window) and they spread over
// it; reset starts over.
func TestBackoffWindows(t *testing.T) {
	cases := []struct {
		name        string
		def, maxMs  float64
		randomize   bool
		wantWindows []time.Duration
	}{
		{"salt defaults", 1000, 10000, true, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}},
		{"not randomized", 1000, 10000, false, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}},
		{"max below default", 500, 100, true, []time.Duration{500 * time.Millisecond, 500 * time.Millisecond}},
		{"zero default", 0, 3000, true, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(tc.def, tc.maxMs, tc.randomize)
			r := rand.New(rand.NewPCG(1, 2))
			b.rand = r.Int64N
			for i, w := range tc.wantWindows {
				if got := b.window(); got != w {
					t.Fatalf("attempt %d: window %s, want %s", i, got, w)
				}
				d := b.next()
				if !tc.randomize && d != w {
					t.Fatalf("attempt %d: wait %s, want the whole window %s", i, d, w)
				}
				if d < 0 || d > w || (tc.randomize && d == w) {
					t.Fatalf("attempt %d: wait %s outside [0, %s)", i, d, w)
				}
			}
			b.reset()
			if got := b.window(); got != tc.wantWindows[0] {
				t.Fatalf("after reset: window %s, want %s", got, tc.wantWindows[0])
			}
		})
	}
}

// TestBackoffSpreadsAFleet: 10,000 minions whose streams broke together
// come back spread evenly over the window, not in a wave at its start or
// end (the old rule drew from [window/2, window)).
func TestBackoffSpreadsAFleet(t *testing.T) {
	const fleet = 10000
	const buckets = 10
	var hist [buckets]int
	for range fleet {
		b := newBackoff(1000, 10000, true)
		b.attempt = 4 // the 10 s window
		d := b.next()
		hist[int(d*buckets/(10*time.Second))]++
	}
	for i, n := range hist {
		// Each tenth of the window gets about 1,000; binomial sd ~30.
		if n < 850 || n > 1150 {
			t.Fatalf("tenth %d of the window got %d of %d reconnects: %v", i, n, fleet, hist)
		}
	}
}
