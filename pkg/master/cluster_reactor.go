package master

// The reactor in a cluster reacts to each event once across all masters.
//
// Bus events: every master forwards the events it sees that match a
// reactor rule to the cluster's work queue, under the event's
// cluster-wide id, so the copies collapse into one item; one master takes
// it and hands it to its reactor (at most once, as in Salt).
//
// Webhook events: the webhook's sink is the work queue itself. The sender
// gets 200 once a JetStream quorum holds the event; a master takes it and
// acknowledges only when the reaction has run, so a master dying
// mid-way leaves the event to another (at least once). The reactor
// package offers no "react and tell me when done", so those events go
// through a second Reactor with one worker, fed one event at a time,
// whose Stats().Spooled drops to zero exactly when the event was
// reacted to.

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/brine-cm/brine/pkg/cluster"
	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/reactor"
	"github.com/brine-cm/brine/pkg/webhook"
)

// reactorBus is the reactor's bus in a cluster: it subscribes to what
// this master took from the work queue, and publishes to everyone.
type reactorBus struct {
	shared event.Bus
	feed   *event.Local
}

func (b reactorBus) Publish(ctx context.Context, tag string, data map[string]any) error {
	if _, spooled := data[reactor.SpoolKey]; spooled {
		return nil // the cluster sink already put this hook on the bus
	}
	return b.shared.Publish(ctx, tag, data)
}

func (b reactorBus) Subscribe(glob string, buffer int) *event.Subscription {
	return b.feed.Subscribe(glob, buffer)
}

// reactorBus is the bus the reactor is built with.
func (m *Master) reactorBus() event.Bus {
	if m.cluster == nil {
		return m.bus
	}
	return reactorBus{shared: m.bus, feed: m.cluster.feed}
}

// hookSink is where the webhook puts accepted events.
func (m *Master) hookSink(r *reactor.Reactor) webhook.Sink {
	if m.cluster == nil {
		return r
	}
	return clusterSink{m}
}

type clusterSink struct{ m *Master }

func (s clusterSink) Accept(ctx context.Context, tag string, data map[string]any, delivery string) error {
	// Answer within GitHub's 10 s: without a quorum the sender gets 503
	// rather than a timeout.
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	id, err := s.m.cluster.react.AcceptHook(ctx, tag, data, delivery)
	if err != nil {
		return err
	}
	// Everyone's bus shows the hook; the marker keeps reactors (and the
	// forwarder) off this copy, as with one master's spool.
	marked := make(map[string]any, len(data)+1)
	for k, v := range data {
		marked[k] = v
	}
	marked[reactor.SpoolKey] = id
	s.m.publish(tag, marked)
	return nil
}

// forwardToReactor sees every event this master receives (bus OnEvent).
func (m *Master) forwardToReactor(ev event.Event, id string) {
	cs := m.cluster
	if cs == nil || m.reactor == nil {
		return
	}
	if _, spooled := ev.Data[reactor.SpoolKey]; spooled {
		return
	}
	matched := false
	for _, rl := range m.reactor.Rules() {
		if event.MatchTag(rl.TagGlob, ev.Tag) {
			matched = true
			break
		}
	}
	if !matched {
		return
	}
	select {
	case cs.forward <- forwardItem{ev: ev, id: id}:
	default:
		// Other masters forward the same event; only if all of them are
		// this far behind is it not reacted to.
		if n := atomic.AddUint64(&cs.forwardDrop, 1); n == 1 || n%1000 == 0 {
			m.log.Warn("reactor forwarder behind; event left to the other masters", "tag", ev.Tag, "dropped_total", n)
		}
	}
}

func (m *Master) startClusterReactor(ctx context.Context) error {
	cs := m.cluster
	hr, err := reactor.New(reactor.Config{
		Rules: m.reactor.Rules(), Workers: 1,
		SpoolDir: filepath.Join(m.cfg.DataDir, "reactor-cluster"), Secrets: m.cfg.ReactorSecrets,
		FileRoots: m.cfg.FileRoots["base"],
	}, reactorBus{shared: m.bus, feed: event.NewLocal()}, m, m.log.With("component", "reactor", "source", "webhook"))
	if err != nil {
		return err
	}
	cs.hookReactor = hr
	cs.wg.Add(3)
	go func() {
		defer cs.wg.Done()
		if err := hr.Run(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("webhook reactor stopped", "err", err)
		}
	}()
	go func() {
		defer cs.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case it := <-cs.forward:
				fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := cs.react.Forward(fctx, it.ev.Tag, it.ev.Data, it.id); err != nil && ctx.Err() == nil {
					m.log.Warn("event not forwarded to the reactor queue", "tag", it.ev.Tag, "err", err)
				}
				cancel()
			}
		}
	}()
	go func() {
		defer cs.wg.Done()
		cs.react.Consume(ctx, m.reactOnce)
	}()
	prev := m.statusHooks["cluster"]
	m.statusHooks["cluster"] = func() any {
		st, _ := prev().(map[string]any)
		hs := hr.Stats()
		st["webhook_reactions"] = hs.Reactions
		st["forward_dropped"] = atomic.LoadUint64(&cs.forwardDrop)
		return st
	}
	return nil
}

// reactOnce handles one item this master took from the work queue.
func (m *Master) reactOnce(ctx context.Context, it cluster.ReactItem) error {
	cs := m.cluster
	if cs.draining.Load() {
		return errDraining // back to the queue, for another master
	}
	if !it.Hook {
		return cs.feed.Publish(ctx, it.Tag, it.Data)
	}
	r := cs.hookReactor
	if err := r.Accept(ctx, it.Tag, it.Data, ""); err != nil {
		return err
	}
	// One item at a time: Spooled is back to zero when this event was
	// reacted to (or was an entry left by an earlier life of this master,
	// replayed first, which is also at least once).
	progress := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for r.Stats().Spooled > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Since(progress) > cs.react.AckWait()/3 {
			it.InProgress()
			progress = time.Now()
		}
	}
	return nil
}

type drainingError struct{}

func (drainingError) Error() string { return "master is draining" }

var errDraining error = drainingError{}

// clusterSetRules applies a reload to the webhook reactor too.
func (m *Master) clusterSetRules(rules []reactor.Rule) {
	if cs := m.cluster; cs != nil && cs.hookReactor != nil {
		cs.hookReactor.SetRules(rules)
	}
}

// clusterDrain stops taking work items (they go to the other masters)
// and finishes the webhook reaction under way.
func (m *Master) clusterDrain(ctx context.Context) error {
	cs := m.cluster
	if cs == nil || cs.hookReactor == nil {
		return nil
	}
	cs.draining.Store(true)
	return cs.hookReactor.Drain(ctx)
}
