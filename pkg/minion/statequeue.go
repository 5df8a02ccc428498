package minion

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// stateQueue lets one state run at a time on a minion, as Salt does: two
// runs that both edit /etc/hosts or both move a deploy's `current` link
// would otherwise race, and the earlier push could end up live.
//
// Salt refuses a second run unless it is called with queue=True. brine
// queues by default, because the runs that collide in practice are the
// reactor's (two pushes in quick succession) and a refused deploy is a
// lost one; queue=False gives Salt's refusal. Waiters are served in jid
// order, not in the order their goroutines happen to arrive, so the later
// of two jobs from one master runs last.
type stateQueue struct {
	mu      sync.Mutex
	running string // jid of the run holding the queue; "" when idle
	since   time.Time
	waiters map[string]chan struct{}
}

// busyError is Salt's answer to a second state run without queue=True.
type busyError struct {
	fun, jid string
	since    time.Time
}

func (e *busyError) Error() string {
	return fmt.Sprintf("the function %q is already running with jid %s (started at %s); call with queue=True to wait for it",
		e.fun, e.jid, e.since.UTC().Format(time.RFC3339))
}

// acquire waits for the queue, or fails at once when wait is false and a
// run is in progress. The returned release must be called.
func (q *stateQueue) acquire(ctx context.Context, fun, jid string, wait bool) (release func(), err error) {
	q.mu.Lock()
	if q.running == "" {
		q.running, q.since = jid, time.Now()
		q.mu.Unlock()
		return q.release, nil
	}
	if !wait {
		e := &busyError{fun: fun, jid: q.running, since: q.since}
		q.mu.Unlock()
		return nil, e
	}
	if q.waiters == nil {
		q.waiters = map[string]chan struct{}{}
	}
	// The same jid offered twice is refused earlier (jidSet); a clash
	// here would only come from jobs without a jid, so make it unique.
	key := jid
	for i := 1; ; i++ {
		if _, dup := q.waiters[key]; !dup && key != q.running {
			break
		}
		key = fmt.Sprintf("%s#%d", jid, i)
	}
	ch := make(chan struct{})
	q.waiters[key] = ch
	q.mu.Unlock()

	select {
	case <-ch:
		return q.release, nil
	case <-ctx.Done():
		q.mu.Lock()
		defer q.mu.Unlock()
		select {
		case <-ch:
			// Granted while giving up: pass the turn on.
			q.handOff()
		default:
			delete(q.waiters, key)
		}
		return nil, fmt.Errorf("waiting for the state run %s to finish: %w", q.running, ctx.Err())
	}
}

func (q *stateQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.handOff()
}

// handOff gives the queue to the waiter with the smallest jid (jids sort
// by time), or marks it idle. Called with mu held.
func (q *stateQueue) handOff() {
	next := ""
	for k := range q.waiters {
		if next == "" || k < next {
			next = k
		}
	}
	if next == "" {
		q.running = ""
		return
	}
	ch := q.waiters[next]
	delete(q.waiters, next)
	q.running, q.since = next, time.Now()
	close(ch)
}
