package webhook

import (
	"sync"
	"time"
)

// deliveries remembers X-GitHub-Delivery ids for a window, in bounded
// memory: entries live in a FIFO ordered by arrival, so expiry and
// eviction of the oldest are both O(1) amortised.
type deliveries struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	seen   map[string]time.Time
	fifo   []seenEntry
	head   int
}

type seenEntry struct {
	key string
	at  time.Time
}

func newDeliveries(window time.Duration, max int) *deliveries {
	return &deliveries{window: window, max: max, seen: make(map[string]time.Time)}
}

// reserve records key and reports true if it was not seen within the
// window. A concurrent duplicate of an in-flight delivery also gets false.
func (d *deliveries) reserve(key string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	if at, ok := d.seen[key]; ok && now.Sub(at) < d.window {
		return false
	}
	for len(d.seen) >= d.max && d.head < len(d.fifo) {
		d.evictHead()
	}
	d.seen[key] = now
	d.fifo = append(d.fifo, seenEntry{key, now})
	return true
}

// forget drops key so the sender may retry after a failed accept.
func (d *deliveries) forget(key string) {
	d.mu.Lock()
	delete(d.seen, key)
	d.mu.Unlock()
}

func (d *deliveries) expire(now time.Time) {
	for d.head < len(d.fifo) && now.Sub(d.fifo[d.head].at) >= d.window {
		d.evictHead()
	}
	// Compact once the consumed prefix dominates, keeping memory bounded.
	if d.head > 1024 && d.head*2 > len(d.fifo) {
		d.fifo = append([]seenEntry(nil), d.fifo[d.head:]...)
		d.head = 0
	}
}

func (d *deliveries) evictHead() {
	e := d.fifo[d.head]
	d.fifo[d.head] = seenEntry{}
	d.head++
	// A forgotten-then-reserved key has a newer entry: keep that one.
	if at, ok := d.seen[e.key]; ok && at.Equal(e.at) {
		delete(d.seen, e.key)
	}
}

func (d *deliveries) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}
