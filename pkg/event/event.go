// Package event is brine's event bus: every significant thing that happens
// (a minion starting, a key changing state, a job return, a webhook) is an
// Event with a slash-separated tag and JSON-shaped data. Subscribers choose
// tags by glob. The Bus interface is the seam a clustered master replaces
// with JetStream; Local is the single-master, in-process implementation.
package event

import (
	"context"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one message on the bus. Data holds only JSON-compatible values
// (map[string]any, []any, string, float64, bool, nil, and Go ints).
type Event struct {
	Tag  string         `json:"tag"`
	Data map[string]any `json:"data"`
	Time time.Time      `json:"time"`
}

// Bus publishes events and fans them out to subscribers.
type Bus interface {
	Publish(ctx context.Context, tag string, data map[string]any) error
	// Subscribe returns a subscription delivering events whose tag matches
	// glob ("" or "*" match everything; "*" crosses slashes like Salt's
	// fnmatch). buffer bounds what a slow reader may fall behind by.
	Subscribe(glob string, buffer int) *Subscription
}

// Subscription is one subscriber's bounded queue. When it is full, new
// events are dropped for this subscriber only and counted in Dropped:
// a slow reader never blocks the master.
type Subscription struct {
	C       <-chan Event
	ch      chan Event
	glob    string
	dropped atomic.Uint64
	// stalled is set when a PublishWait gave up on this subscriber: until
	// it drains to half its buffer, producers stop waiting for it, so a
	// consumer that has stopped reading costs one wait, not one per event.
	stalled atomic.Bool
	once    sync.Once
	cancel  func()
}

// Dropped reports how many events this subscriber lost to a full buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes; C is closed afterwards.
func (s *Subscription) Close() {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
	})
}

// MatchTag reports whether tag matches glob with fnmatch semantics in which
// '*' also matches '/', as Salt's event matching does.
func MatchTag(glob, tag string) bool {
	if glob == "" || glob == "*" {
		return true
	}
	return globMatch(glob, tag)
}

// globMatch is path.Match without the special meaning of '/'.
func globMatch(pattern, name string) bool {
	// Every tag a glob matches starts with the glob's literal part. Most
	// globs a busy bus tests (a reactor rule against each job return) fail
	// there, before any copy of either string is made.
	lit := pattern
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		lit = pattern[:i]
	}
	if !strings.HasPrefix(name, lit) {
		return false
	}
	if len(lit) == len(pattern) && len(name) != len(pattern) {
		return false // a literal glob matches only itself
	}
	// Replace '/' on both sides with a byte path.Match treats as ordinary.
	const sep = "\x00"
	// A NUL already in either side would pose as a '/': a minion's tag
	// "salt\x00netapi\x00hook\x00..." would match the reactor's
	// "salt/netapi/hook/*" while slipping past the reserved-prefix check.
	for _, s := range [2]string{pattern, name} {
		for i := 0; i < len(s); i++ {
			if s[i] == 0 {
				return false
			}
		}
	}
	p := replaceSlash(pattern, sep)
	n := replaceSlash(name, sep)
	ok, err := path.Match(p, n)
	return err == nil && ok
}

func replaceSlash(s, with string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			out = append(out, with...)
		} else {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// Local is the in-process Bus.
type Local struct {
	mu        sync.RWMutex
	subs      map[*Subscription]struct{}
	published atomic.Uint64
	dropped   atomic.Uint64
	// OnPublish, when set, is called for every published event (metrics).
	OnPublish func(Event)
	// OnDrop, when set, is called for every event a subscriber lost.
	OnDrop func(Event)
}

// NewLocal returns an empty in-process bus.
func NewLocal() *Local {
	return &Local{subs: make(map[*Subscription]struct{})}
}

// Publish delivers ev to every matching subscriber without blocking.
func (b *Local) Publish(_ context.Context, tag string, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	ev := Event{Tag: tag, Data: data, Time: time.Now().UTC()}
	b.published.Add(1)
	if b.OnPublish != nil {
		b.OnPublish(ev)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		if !MatchTag(s.glob, tag) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
			b.dropped.Add(1)
			if b.OnDrop != nil {
				b.OnDrop(ev)
			}
		}
	}
	return nil
}

// PublishWait is Publish for producers that can be slowed down, such as
// the events a minion sends on its stream: a matching subscriber whose
// buffer is full is waited for, up to wait, before the event is dropped
// for it. The producer's own flow control then pushes back (a minion's
// event.send fails when its queue is full) instead of events vanishing
// at the subscriber. Subscribe and Close wait for a waiting publisher.
func (b *Local) PublishWait(ctx context.Context, tag string, data map[string]any, wait time.Duration) error {
	if data == nil {
		data = map[string]any{}
	}
	ev := Event{Tag: tag, Data: data, Time: time.Now().UTC()}
	b.published.Add(1)
	if b.OnPublish != nil {
		b.OnPublish(ev)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	var timer *time.Timer
	expired := false
	for s := range b.subs {
		if !MatchTag(s.glob, tag) {
			continue
		}
		select {
		case s.ch <- ev:
			if s.stalled.Load() && len(s.ch) <= cap(s.ch)/2 {
				s.stalled.Store(false)
			}
			continue
		default:
		}
		if expired || (s.stalled.Load() && len(s.ch) > cap(s.ch)/2) {
			b.drop(s, ev)
			continue
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case s.ch <- ev:
		case <-timer.C:
			expired = true
			s.stalled.Store(true)
			b.drop(s, ev)
		case <-ctx.Done():
			b.drop(s, ev)
		}
	}
	return nil
}

func (b *Local) drop(s *Subscription, ev Event) {
	s.dropped.Add(1)
	b.dropped.Add(1)
	if b.OnDrop != nil {
		b.OnDrop(ev)
	}
}

// Subscribe registers a bounded subscriber.
func (b *Local) Subscribe(glob string, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 1024
	}
	ch := make(chan Event, buffer)
	s := &Subscription{C: ch, ch: ch, glob: glob}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	s.cancel = func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
		close(ch)
	}
	return s
}

// Stats reports totals since start: events published and events dropped
// across all subscribers.
func (b *Local) Stats() (published, dropped uint64) {
	return b.published.Load(), b.dropped.Load()
}
