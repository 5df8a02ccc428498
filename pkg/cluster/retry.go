package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// When a JetStream server dies, the streams it led elect a new leader,
// which takes a few seconds; requests meanwhile go unanswered. Every
// bucket operation is retried through that window rather than failing a
// minion's return or a key decision.
const (
	opAttempt  = 5 * time.Second  // one request
	opRetryFor = 30 * time.Second // all attempts
)

// transient: worth another try once a leader is elected.
func transient(err error) bool {
	return retryable(err) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrNoServers)
}

// retry runs op until it succeeds, fails for good, or opRetryFor (or ctx)
// runs out. op must be safe to repeat: a write whose answer was lost may
// have happened, so Create/Update callers treat "exists"/"wrong revision"
// as "re-read and decide again", and publishes carry a Nats-Msg-Id.
func (n *Node) retry(ctx context.Context, op func(context.Context) error) error {
	start := time.Now()
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, opAttempt)
		err := op(actx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil || time.Since(start) > opRetryFor {
			return err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return err
		}
		wait = min(2*wait, time.Second)
	}
}

// rkv is a KV bucket whose operations retry through leader elections.
type rkv struct {
	n  *Node
	kv jetstream.KeyValue
}

func (r *rkv) Bucket() string { return r.kv.Bucket() }

func (r *rkv) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	var e jetstream.KeyValueEntry
	err := r.n.retry(ctx, func(c context.Context) (err error) { e, err = r.kv.Get(c, key); return err })
	return e, err
}

func (r *rkv) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	var rev uint64
	err := r.n.retry(ctx, func(c context.Context) (err error) { rev, err = r.kv.Put(c, key, value); return err })
	return rev, err
}

func (r *rkv) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	var rev uint64
	err := r.n.retry(ctx, func(c context.Context) (err error) { rev, err = r.kv.Create(c, key, value); return err })
	return rev, err
}

func (r *rkv) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	var rev uint64
	err := r.n.retry(ctx, func(c context.Context) (err error) { rev, err = r.kv.Update(c, key, value, last); return err })
	return rev, err
}

func (r *rkv) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return r.n.retry(ctx, func(c context.Context) error { return r.kv.Delete(c, key, opts...) })
}

func (r *rkv) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return r.n.retry(ctx, func(c context.Context) error { return r.kv.Purge(c, key, opts...) })
}

// Watch and WatchAll are not retried: a watcher is long-lived and the
// library re-creates its consumer itself.
func (r *rkv) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	return r.kv.Watch(ctx, keys, opts...)
}

func (r *rkv) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	return r.kv.WatchAll(ctx, opts...)
}

// publish sends a JetStream message, retrying like the buckets; the
// message should carry a Nats-Msg-Id so a repeat is stored once.
func (n *Node) publish(ctx context.Context, msg *nats.Msg) error {
	return n.retry(ctx, func(c context.Context) error { _, err := n.js.PublishMsg(c, msg); return err })
}
