package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// watched is a KV bucket with an in-memory copy kept current by a watch,
// so reads cost no round trip. Each master's own writes are applied to
// the copy as soon as they succeed (read-your-writes); the watch then
// brings everyone's, in revision order. Deletions stay as tombstones so a
// late copy of an older write can never resurrect a key.
type watched[T any] struct {
	n      *Node
	kv     *rkv
	decode func(key string, value []byte) (id string, v T, err error)
	// onChange sees every change with the value before and after (ok
	// false: absent). It runs on the watch goroutine or on the writer's.
	onChange func(id string, before T, hadBefore bool, after T, hasAfter bool)

	mu    sync.RWMutex
	cache map[string]version[T]

	watcher jetstream.KeyWatcher
	cancel  context.CancelFunc
	done    chan struct{}
}

type version[T any] struct {
	v   T
	ok  bool
	rev uint64
}

// start watches the bucket and returns once the current content is
// loaded.
func (w *watched[T]) start(ctx context.Context) error {
	w.cache = map[string]version[T]{}
	w.done = make(chan struct{})
	wctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	kw, err := w.kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("cluster: watch %s: %w", w.kv.Bucket(), err)
	}
	w.watcher = kw
	for loaded := false; !loaded; {
		select {
		case <-ctx.Done():
			cancel()
			return fmt.Errorf("cluster: loading %s: %w", w.kv.Bucket(), ctx.Err())
		case e, ok := <-kw.Updates():
			if !ok {
				cancel()
				return errors.New("cluster: watch on " + w.kv.Bucket() + " closed while loading")
			}
			if e == nil {
				loaded = true
				continue
			}
			w.apply(e, false)
		}
	}
	go func() {
		defer close(w.done)
		for e := range kw.Updates() {
			if e != nil {
				w.apply(e, true)
			}
		}
	}()
	return nil
}

func (w *watched[T]) apply(e jetstream.KeyValueEntry, notify bool) {
	var (
		id  string
		v   T
		ok  bool
		err error
	)
	if e.Operation() == jetstream.KeyValuePut {
		id, v, err = w.decode(e.Key(), e.Value())
		ok = true
	} else {
		id, err = kvKeyID(e.Key())
	}
	if err != nil {
		w.n.log.Error("bad entry in bucket, ignored", "bucket", w.kv.Bucket(), "key", e.Key(), "err", err)
		return
	}
	w.set(id, v, ok, e.Revision(), notify)
}

// set records a version unless a newer one is already known.
func (w *watched[T]) set(id string, v T, ok bool, rev uint64, notify bool) {
	w.mu.Lock()
	old := w.cache[id]
	if old.rev >= rev {
		w.mu.Unlock()
		return
	}
	w.cache[id] = version[T]{v: v, ok: ok, rev: rev}
	w.mu.Unlock()
	if notify && w.onChange != nil {
		w.onChange(id, old.v, old.ok, v, ok)
	}
}

// get reads the copy.
func (w *watched[T]) get(id string) (T, uint64, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	c := w.cache[id]
	return c.v, c.rev, c.ok
}

// each visits every present value under the read lock; fn must not call
// back into w.
func (w *watched[T]) each(fn func(id string, v T)) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	for id, c := range w.cache {
		if c.ok {
			fn(id, c.v)
		}
	}
}

func (w *watched[T]) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	if w.watcher != nil {
		_ = w.watcher.Stop()
	}
}

// casErr reports a compare-and-set conflict (someone wrote first).
func casErr(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}
