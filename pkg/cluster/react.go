package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brine-cm/brine/pkg/webhook"
)

// ReactOptions tune the work queue; zero values are the defaults.
type ReactOptions struct {
	// Retention bounds how long an item may wait and how long a delivery
	// id is remembered (default 7 days, the reactor's).
	Retention time.Duration
	// AckWait is how long a master may hold an item before JetStream
	// gives it to another master (default 10 s); long reactions report
	// progress with InProgress.
	AckWait time.Duration
}

// ReactItem is one event to react to, taken from the work queue.
type ReactItem struct {
	Tag  string         `json:"tag"`
	Data map[string]any `json:"data"`
	// Hook marks a webhook event: acknowledged to its sender, so it must
	// be reacted to at least once. Other events are reacted to at most
	// once, as in Salt.
	Hook bool `json:"hook,omitempty"`
	// Delivery is the sender's X-GitHub-Delivery id, "" when none.
	Delivery string `json:"delivery,omitempty"`
	// Redelivered counts earlier deliveries of this item (a master died
	// holding it, or a reaction failed to finish).
	Redelivered uint64 `json:"-"`

	msg jetstream.Msg
}

func decodeReactItem(b []byte) (ReactItem, error) {
	var it ReactItem
	if err := json.Unmarshal(b, &it); err != nil {
		return ReactItem{}, fmt.Errorf("reactor work item: %w", err)
	}
	if it.Tag == "" {
		return ReactItem{}, errors.New("reactor work item: no tag")
	}
	if it.Data == nil {
		it.Data = map[string]any{}
	}
	return it, nil
}

// InProgress tells JetStream the item is still being worked on.
func (it ReactItem) InProgress() {
	if it.msg != nil {
		_ = it.msg.InProgress()
	}
}

// ReactQueue is the cluster's reactor work queue: a WorkQueue stream with
// one durable consumer every master pulls from, so each item is taken by
// exactly one master, and given to another if that one dies before
// acknowledging it. The same event forwarded by several masters is
// stored once (Nats-Msg-Id, within the stream's duplicate window); the
// same webhook delivery id is refused for the retention period (a KV
// bucket), as the single master's spool refuses it.
type ReactQueue struct {
	n          *Node
	cons       jetstream.Consumer
	deliveries *rkv
	ackWait    time.Duration
}

// AckWait is how long an item may be held without InProgress.
func (q *ReactQueue) AckWait() time.Duration { return q.ackWait }

// OpenReactQueue creates (or opens) the work queue.
func OpenReactQueue(ctx context.Context, n *Node, o ReactOptions) (*ReactQueue, error) {
	retention, ackWait := o.Retention, o.AckWait
	if retention <= 0 {
		retention = 7 * 24 * time.Hour
	}
	if ackWait <= 0 {
		ackWait = 10 * time.Second
	}
	st, err := n.stream(ctx, jetstream.StreamConfig{
		Name:        n.bucket("react"),
		Description: "brine reactor work queue",
		Subjects:    []string{n.subject("react", ">")},
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  2 * time.Minute,
		MaxAge:      retention,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "reactor",
		Description:   "every master's reactor",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 10_000,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: reactor consumer: %w", err)
	}
	dkv, err := n.kv(ctx, jetstream.KeyValueConfig{Bucket: n.bucket("deliveries"), Description: "brine webhook delivery ids reacted to", History: 1, TTL: retention})
	if err != nil {
		return nil, err
	}
	return &ReactQueue{n: n, cons: cons, deliveries: dkv, ackWait: ackWait}, nil
}

// deliveryKey scopes a delivery id by tag and hashes it into a KV key.
func deliveryKey(tag, delivery string) string {
	h := sha256.Sum256([]byte(tag + "\x00" + delivery))
	return hex.EncodeToString(h[:])
}

// Forward puts a bus event on the queue. eventID is its cluster-wide id:
// every master forwards the events it sees, and the copies collapse into
// one item.
func (q *ReactQueue) Forward(ctx context.Context, tag string, data map[string]any, eventID string) error {
	b, err := json.Marshal(ReactItem{Tag: tag, Data: data})
	if err != nil {
		return fmt.Errorf("forward %s: %w", tag, err)
	}
	msg := &nats.Msg{Subject: q.n.subject("react", "bus"), Data: b, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, eventID)
	if err := q.n.publish(ctx, msg); err != nil {
		return fmt.Errorf("forward %s: %w", tag, err)
	}
	return nil
}

// AcceptHook is the webhook's durable sink in a cluster: it returns nil
// once the event is stored on a quorum of JetStream servers. A delivery
// id seen before gives webhook.ErrReplayed; no quorum gives
// webhook.ErrUnavailable, so the sender retries.
func (q *ReactQueue) AcceptHook(ctx context.Context, tag string, data map[string]any, delivery string) (string, error) {
	id := nats.NewInbox()[len(nats.InboxPrefix):]
	if delivery != "" {
		key := deliveryKey(tag, delivery)
		_, err := q.deliveries.Create(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return "", fmt.Errorf("delivery %s: %w", delivery, webhook.ErrReplayed)
		}
		if err != nil {
			return "", fmt.Errorf("delivery %s: %w (%w)", delivery, err, webhook.ErrUnavailable)
		}
		id = "hook-" + key
	}
	b, err := json.Marshal(ReactItem{Tag: tag, Data: data, Hook: true, Delivery: delivery})
	if err != nil {
		return "", fmt.Errorf("hook %s: %w", tag, err)
	}
	msg := &nats.Msg{Subject: q.n.subject("react", "hook"), Data: b, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if err := q.n.publish(ctx, msg); err != nil {
		if delivery != "" {
			// Not stored: let the sender's retry through.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = q.deliveries.Delete(dctx, deliveryKey(tag, delivery))
			cancel()
		}
		return "", fmt.Errorf("hook %s: %w (%w)", tag, err, webhook.ErrUnavailable)
	}
	return id, nil
}

// Consume takes items one at a time until ctx ends. handle returning nil
// acknowledges the item (it leaves the queue); an error gives it back
// for another try, on this master or another.
func (q *ReactQueue) Consume(ctx context.Context, handle func(context.Context, ReactItem) error) error {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		batch, err := q.cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			q.n.log.Debug("reactor queue fetch", "err", err)
			if err := sleep(ctx, time.Second); err != nil {
				return nil
			}
			continue
		}
		for msg := range batch.Messages() {
			q.handle(ctx, msg, handle)
		}
		cancel()
		if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			// No leader for the queue for a moment (a peer died): wait
			// rather than spin.
			q.n.log.Debug("reactor queue fetch", "err", err)
			if err := sleep(ctx, time.Second); err != nil {
				return nil
			}
		}
	}
	return nil
}

func (q *ReactQueue) handle(ctx context.Context, msg jetstream.Msg, handle func(context.Context, ReactItem) error) {
	it, err := decodeReactItem(msg.Data())
	if err != nil {
		q.n.log.Error("dropping undecodable reactor work item", "err", err)
		_ = msg.Term()
		return
	}
	it.msg = msg
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		it.Redelivered = md.NumDelivered - 1
	}
	if err := handle(ctx, it); err != nil {
		q.n.log.Warn("reaction not finished; the item goes back to the queue", "tag", it.Tag, "err", err)
		_ = msg.NakWithDelay(2 * time.Second)
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		q.n.log.Warn("reactor work item not acknowledged; it may be reacted to again", "tag", it.Tag, "err", err)
	}
}
