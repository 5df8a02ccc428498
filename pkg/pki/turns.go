package pki

import (
	"container/heap"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// ErrHandshakeStalled is the read error of a connection that waited for
// its turn to do TLS handshake work while no other connection got one.
var ErrHandshakeStalled = errors.New("no TLS handshake made progress")

// DefaultHandshakeTurns is how many connections may do TLS handshake work
// at once when GatedCreds.HandshakeTurns is zero.
func DefaultHandshakeTurns() int { return max(16, 64*runtime.GOMAXPROCS(0)) }

// handshakeTurns hands out turns of TLS handshake work, oldest connection
// first.
//
// Why: a master restarted under 10,000 minions receives 10,000 ClientHellos
// at once. Served all at once, every handshake gets a 10,000th of the CPU,
// all of them finish together after the handshake deadline, fail, and are
// retried (brine-bench: 143 of 10,000 connected after ten minutes). A
// connection holds a turn only while it has bytes to work on (between a
// read returning data and its next read), never while it waits for its
// client, so a client that stalls takes no turn from anyone; and the
// oldest connection goes first, so a handshake already under way finishes
// before a new one starts and the master completes handshakes at the rate
// its CPU allows instead of none at all.
type handshakeTurns struct {
	mu      sync.Mutex
	max     int
	active  int
	waiting turnHeap
	seq     uint64
	moved   time.Time // when a turn was last given back
}

func newHandshakeTurns(n int) *handshakeTurns {
	if n <= 0 {
		n = DefaultHandshakeTurns()
	}
	return &handshakeTurns{max: n, moved: time.Now()}
}

// next numbers a new connection: lower numbers get turns first.
func (q *handshakeTurns) next() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	return q.seq
}

// take waits for a turn. It gives up with ErrHandshakeStalled once no
// turn has been given back for stall: the master is wedged, and the client
// is better off retrying later than waiting on.
func (q *handshakeTurns) take(seq uint64, stall time.Duration) error {
	q.mu.Lock()
	if q.active < q.max && q.waiting.Len() == 0 {
		q.active++
		q.mu.Unlock()
		return nil
	}
	w := &turnWaiter{seq: seq, ready: make(chan struct{}, 1)}
	heap.Push(&q.waiting, w)
	wait := time.Until(q.moved.Add(stall))
	q.mu.Unlock()
	t := time.NewTimer(max(wait, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.ready:
			return nil
		case <-t.C:
		}
		q.mu.Lock()
		if w.index < 0 { // given a turn just now
			q.mu.Unlock()
			<-w.ready
			return nil
		}
		if idle := time.Since(q.moved); idle >= stall {
			heap.Remove(&q.waiting, w.index)
			q.mu.Unlock()
			return fmt.Errorf("%w for %s (%d connections waiting)", ErrHandshakeStalled, idle.Round(time.Millisecond), q.waiting.Len()+1)
		}
		t.Reset(time.Until(q.moved.Add(stall)))
		q.mu.Unlock()
	}
}

// give hands the turn to the oldest waiting connection, or frees it.
func (q *handshakeTurns) give() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moved = time.Now()
	if q.waiting.Len() == 0 {
		q.active--
		return
	}
	w := heap.Pop(&q.waiting).(*turnWaiter)
	w.ready <- struct{}{}
}

type turnWaiter struct {
	seq   uint64
	index int // in the heap; -1 once popped
	ready chan struct{}
}

type turnHeap []*turnWaiter

func (h turnHeap) Len() int           { return len(h) }
func (h turnHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h turnHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *turnHeap) Push(x any) {
	w := x.(*turnWaiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *turnHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}

// HandshakeTurns is the same turn-taking for the client side of TLS
// handshakes, for a process that runs many clients (brine-bench runs
// thousands of minions in one process): a client that has its server's
// answer finishes its handshake before a younger one starts, so no
// server's deadline waits on a client starved by its own siblings.
type HandshakeTurns struct{ q *handshakeTurns }

// NewHandshakeTurns allows n handshakes to work at once (0: the default).
func NewHandshakeTurns(n int) *HandshakeTurns { return &HandshakeTurns{q: newHandshakeTurns(n)} }

// Next numbers a new handshake: lower numbers get turns first.
func (t *HandshakeTurns) Next() uint64 { return t.q.next() }

// Take waits for a turn; see handshakeTurns.take.
func (t *HandshakeTurns) Take(seq uint64, stall time.Duration) error { return t.q.take(seq, stall) }

// Give returns a turn.
func (t *HandshakeTurns) Give() { t.q.give() }

// Held is how many turns are out (for tests: a leaked turn is one fewer
// for every later handshake in the process).
func (t *HandshakeTurns) Held() int {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	return t.q.active
}
