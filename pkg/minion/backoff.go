package minion

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait before each reconnect: Salt's recon_default doubled
// per failed attempt up to recon_max, and with recon_randomize (the
// default) a uniformly random fraction of that ("full jitter").
//
// Why full jitter: after a master restart every minion's stream breaks in
// the same second. With a fixed or half-jittered wait they come back in
// waves as tight as the one that broke them; drawn from [0, window) they
// arrive spread evenly over the window, and the window doubles while the
// master is still too busy to take them (brine-bench, 10,000 minions).
type backoff struct {
	base, max time.Duration
	randomize bool
	attempt   int
	rand      func(n int64) int64 // [0, n); rand.Int64N unless a test sets it
}

func newBackoff(reconDefaultMs, reconMaxMs float64, randomize bool) *backoff {
	base := time.Duration(reconDefaultMs * float64(time.Millisecond))
	if base <= 0 {
		base = time.Second
	}
	maxD := time.Duration(reconMaxMs * float64(time.Millisecond))
	if maxD < base {
		maxD = base
	}
	return &backoff{base: base, max: maxD, randomize: randomize, rand: rand.Int64N}
}

// window is the upper bound of the next wait.
func (b *backoff) window() time.Duration {
	w := b.base
	for i := 0; i < b.attempt && w < b.max; i++ {
		w *= 2
	}
	return min(w, b.max)
}

// next is the wait before the next attempt; each call widens the window.
func (b *backoff) next() time.Duration {
	w := b.window()
	b.attempt++
	if !b.randomize {
		return w
	}
	return time.Duration(b.rand(int64(w)))
}

// reset starts over after a connection that worked.
func (b *backoff) reset() { b.attempt = 0 }
