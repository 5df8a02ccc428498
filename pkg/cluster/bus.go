package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brine-cm/brine/pkg/event"
)

// Subject names. Everything sits under brine.<cluster>. so that several
// brine clusters may share one external NATS.
func (n *Node) subject(parts ...string) string {
	s := "brine." + n.cfg.Name
	for _, p := range parts {
		s += "." + p
	}
	return s
}

// bucket names a KV bucket or stream of this cluster.
func (n *Node) bucket(name string) string { return "brine_" + n.cfg.Name + "_" + name }

// tagClass is the subject token for a tag: its first segment when that is
// a safe token, else "other". Subscribers filter by glob locally; the
// token only lets NATS tools watch one kind of event.
func tagClass(tag string) string {
	seg := tag
	for i := 0; i < len(tag); i++ {
		if tag[i] == '/' {
			seg = tag[:i]
			break
		}
	}
	if seg == "" || len(seg) > 32 {
		return "other"
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "other"
		}
	}
	return seg
}

// wireEvent is an event on the NATS subject.
type wireEvent struct {
	ID   string         `json:"id"`
	Tag  string         `json:"tag"`
	Data map[string]any `json:"data"`
	Time time.Time      `json:"time"`
}

// decodeEvent parses a bus message; anything that is not an event with a
// tag is refused.
func decodeEvent(b []byte) (wireEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return wireEvent{}, fmt.Errorf("event: %w", err)
	}
	if w.Tag == "" {
		return wireEvent{}, fmt.Errorf("event %q: no tag", w.ID)
	}
	if w.Data == nil {
		w.Data = map[string]any{}
	}
	return w, nil
}

// Bus is event.Bus over NATS: Publish goes to brine.<cluster>.ev.<class>,
// and every master's subscription feeds its in-process event.Local, whose
// Subscribe API (bounded buffers, drops counted) callers keep using. Like
// Salt's bus and event.Local it is at-most-once: an event published while
// a master is cut off from NATS is not replayed to it. Durable paths
// (reactor work queue, job cache) do not depend on it.
type Bus struct {
	node  *Node
	local *event.Local
	sub   *nats.Subscription
	seq   atomic.Uint64
	// OnEvent, when set before Start, sees every event this master
	// receives, with its cluster-wide id (the reactor forwarder).
	OnEvent func(ev event.Event, id string)
	sent    atomic.Uint64
}

var _ event.Bus = (*Bus)(nil)

// NewBus returns the cluster bus; call Start to receive.
func NewBus(n *Node) *Bus { return &Bus{node: n, local: event.NewLocal()} }

// Local is the in-process fan-out the bus feeds (for metrics hooks).
func (b *Bus) Local() *event.Local { return b.local }

// Start subscribes to every master's events.
func (b *Bus) Start() error {
	sub, err := b.node.nc.Subscribe(b.node.subject("ev", ">"), func(msg *nats.Msg) {
		w, err := decodeEvent(msg.Data)
		if err != nil {
			b.node.log.Warn("undecodable event on the bus", "subject", msg.Subject, "err", err)
			return
		}
		ev := event.Event{Tag: w.Tag, Data: w.Data, Time: w.Time}
		if b.OnEvent != nil {
			b.OnEvent(ev, w.ID)
		}
		_ = b.local.Publish(context.Background(), w.Tag, w.Data)
	})
	if err != nil {
		return fmt.Errorf("cluster bus: subscribe: %w", err)
	}
	// A burst (every minion reconnecting) must not trip NATS's slow
	// consumer limit; the local fan-out behind it never blocks.
	if err := sub.SetPendingLimits(1<<20, 512<<20); err != nil {
		return fmt.Errorf("cluster bus: %w", err)
	}
	b.sub = sub
	return nil
}

// Publish sends an event to every master.
func (b *Bus) Publish(_ context.Context, tag string, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	w := wireEvent{ID: b.node.id + "." + strconv.FormatUint(b.seq.Add(1), 10), Tag: tag, Data: data, Time: time.Now().UTC()}
	raw, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("event %s: %w", tag, err)
	}
	if err := b.node.nc.Publish(b.node.subject("ev", tagClass(tag)), raw); err != nil {
		return fmt.Errorf("event %s: %w", tag, err)
	}
	b.sent.Add(1)
	return nil
}

// Subscribe is event.Local's: a bounded, glob-filtered queue.
func (b *Bus) Subscribe(glob string, buffer int) *event.Subscription {
	return b.local.Subscribe(glob, buffer)
}

// Stats reports events this master received and events its subscribers
// dropped.
func (b *Bus) Stats() (published, dropped uint64) { return b.local.Stats() }

// Sent counts events this master published to the cluster.
func (b *Bus) Sent() uint64 { return b.sent.Load() }

// Close unsubscribes.
func (b *Bus) Close() {
	if b.sub != nil {
		_ = b.sub.Unsubscribe()
	}
}
