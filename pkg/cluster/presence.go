package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brine-cm/brine/pkg/pki"
)

// Heartbeats: every master publishes one every beatEvery on core NATS (not
// JetStream, whose streams may be electing leaders exactly when a master
// has died); one silent for deadAfter is taken for gone, and the minions
// it held for disconnected.
const (
	beatEvery = time.Second
	deadAfter = 5 * time.Second
)

// MinionState is where a minion is connected, shared by every master so
// that each one's registry (targeting) knows every minion and its grains.
type MinionState struct {
	ID          string         `json:"id"`
	Grains      map[string]any `json:"grains,omitempty"`
	Connected   bool           `json:"connected"`
	Master      string         `json:"master"` // instance id holding its stream
	LastSeen    time.Time      `json:"last_seen"`
	ConnectedAt time.Time      `json:"connected_at"`
}

func decodeMinionState(b []byte) (MinionState, error) {
	var st MinionState
	if err := json.Unmarshal(b, &st); err != nil {
		return MinionState{}, fmt.Errorf("minion state: %w", err)
	}
	if err := pki.ValidateID(st.ID); err != nil {
		return MinionState{}, fmt.Errorf("minion state: %w", err)
	}
	return st, nil
}

type beat struct {
	ID  string `json:"id"`
	Bye bool   `json:"bye,omitempty"` // a clean stop
}

// Presence shares minion connection state and master liveness.
type Presence struct {
	n       *Node
	minions watched[MinionState]
	beats   *nats.Subscription

	mu       sync.Mutex
	lastBeat map[string]time.Time // local clock: when each master was last heard
	alive    map[string]bool
	onChange func(st MinionState, known bool)
	since    time.Time
	cancel   context.CancelFunc
	done     chan struct{}
}

// OpenPresence loads the shared minion states and starts this master's
// heartbeat. onChange sees every minion whose effective state changed
// (known false: its entry was removed); Connected is already false when
// the master holding it has gone silent.
func OpenPresence(ctx context.Context, n *Node, onChange func(st MinionState, known bool)) (*Presence, error) {
	mkv, err := n.kv(ctx, jetstream.KeyValueConfig{Bucket: n.bucket("minions"), Description: "brine minion connections and grains", History: 1})
	if err != nil {
		return nil, err
	}
	p := &Presence{n: n, lastBeat: map[string]time.Time{}, alive: map[string]bool{}, onChange: onChange, since: time.Now(), done: make(chan struct{})}
	p.minions = watched[MinionState]{n: n, kv: mkv,
		decode: func(_ string, b []byte) (string, MinionState, error) {
			st, err := decodeMinionState(b)
			return st.ID, st, err
		},
		onChange: func(id string, _ MinionState, _ bool, after MinionState, ok bool) {
			if p.onChange == nil {
				return
			}
			if !ok {
				p.onChange(MinionState{ID: id}, false)
				return
			}
			p.onChange(p.effective(after), true)
		},
	}
	sub, err := n.nc.Subscribe(n.subject("beat"), func(msg *nats.Msg) {
		var b beat
		if json.Unmarshal(msg.Data, &b) != nil || b.ID == "" || b.ID == n.id {
			return
		}
		if b.Bye {
			p.silenced(b.ID)
		} else {
			p.heard(b.ID)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: heartbeats: %w", err)
	}
	p.beats = sub
	p.beat(false)
	if err := p.minions.start(ctx); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.loop(lctx)
	return p, nil
}

func (p *Presence) heard(id string) {
	p.mu.Lock()
	p.lastBeat[id] = time.Now()
	was := p.alive[id]
	p.alive[id] = true
	p.mu.Unlock()
	if !was {
		p.masterChanged(id)
	}
}

// silenced: a master said goodbye (a clean stop).
func (p *Presence) silenced(id string) {
	if id == p.n.id {
		return
	}
	p.mu.Lock()
	was, known := p.alive[id]
	p.alive[id] = false
	p.mu.Unlock()
	if was || !known {
		p.masterChanged(id)
	}
}

func (p *Presence) beat(bye bool) {
	b, _ := json.Marshal(beat{ID: p.n.id, Bye: bye})
	if err := p.n.nc.Publish(p.n.subject("beat"), b); err != nil {
		p.n.log.Debug("heartbeat not sent", "err", err)
	}
}

func (p *Presence) loop(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(beatEvery)
	defer t.Stop()
	graceOver := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.beat(false)
		var gone []string
		if !graceOver && time.Since(p.since) >= deadAfter {
			// Masters named in presence but never heard since we
			// started are gone (a crashed master's former self).
			graceOver = true
			seen := map[string]bool{}
			p.minions.each(func(_ string, st MinionState) {
				if st.Connected && st.Master != p.n.id {
					seen[st.Master] = true
				}
			})
			p.mu.Lock()
			for id := range seen {
				if _, known := p.alive[id]; !known {
					gone = append(gone, id)
				}
			}
			p.mu.Unlock()
		}
		p.mu.Lock()
		for id, at := range p.lastBeat {
			if id != p.n.id && p.alive[id] && time.Since(at) > deadAfter {
				p.alive[id] = false
				gone = append(gone, id)
			}
		}
		p.mu.Unlock()
		for _, id := range gone {
			p.n.log.Warn("master silent, its minions count as disconnected until they reconnect elsewhere", "master", id)
			p.masterChanged(id)
		}
	}
}

// masterChanged re-announces the minions a master holds (it came or went).
func (p *Presence) masterChanged(master string) {
	if p.onChange == nil {
		return
	}
	var sts []MinionState
	p.minions.each(func(_ string, st MinionState) {
		if st.Master == master && st.Connected {
			sts = append(sts, st)
		}
	})
	for _, st := range sts {
		p.onChange(p.effective(st), true)
	}
}

// Alive reports whether a master instance has beaten lately (this one
// always is). One not heard of yet counts as alive for deadAfter after
// this master started: its next beat may simply not have arrived.
func (p *Presence) Alive(master string) bool {
	if master == p.n.id {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if alive, known := p.alive[master]; known {
		return alive
	}
	return time.Since(p.since) < deadAfter
}

// Masters lists the instances alive now.
func (p *Presence) Masters() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []string{p.n.id}
	for id, ok := range p.alive {
		if ok && id != p.n.id {
			out = append(out, id)
		}
	}
	return out
}

func (p *Presence) effective(st MinionState) MinionState {
	if st.Connected && !p.Alive(st.Master) {
		st.Connected = false
	}
	return st
}

// Lookup returns a minion's effective state.
func (p *Presence) Lookup(id string) (MinionState, bool) {
	st, _, ok := p.minions.get(id)
	if !ok {
		return MinionState{}, false
	}
	return p.effective(st), true
}

// Each visits every known minion's effective state.
func (p *Presence) Each(fn func(MinionState)) {
	var all []MinionState
	p.minions.each(func(_ string, st MinionState) { all = append(all, st) })
	for _, st := range all {
		fn(p.effective(st))
	}
}

// Connected records that this master now holds the minion's stream. The
// newest connection wins: a minion that moved here is no longer routed
// to the master it left.
func (p *Presence) Connected(ctx context.Context, id string, grains map[string]any, at time.Time) error {
	st := MinionState{ID: id, Grains: grains, Connected: true, Master: p.n.id, LastSeen: at, ConnectedAt: at}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("minion %s: presence: %w", id, err)
	}
	rev, err := p.minions.kv.Put(ctx, kvKey(id), b)
	if err != nil {
		return fmt.Errorf("minion %s: presence: %w", id, err)
	}
	p.minions.set(id, st, true, rev, true)
	return nil
}

// Disconnected records the stream's end, unless the minion has meanwhile
// connected to another master (or again here).
func (p *Presence) Disconnected(ctx context.Context, id string, at time.Time) error {
	for attempt := 0; attempt < 20; attempt++ {
		e, err := p.minions.kv.Get(ctx, kvKey(id))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("minion %s: presence: %w", id, err)
		}
		st, err := decodeMinionState(e.Value())
		if err != nil {
			return err
		}
		if st.Master != p.n.id || !st.Connected || st.ConnectedAt.After(at) {
			return nil
		}
		st.Connected, st.LastSeen = false, at
		b, _ := json.Marshal(st)
		rev, err := p.minions.kv.Update(ctx, kvKey(id), b, e.Revision())
		if err == nil {
			p.minions.set(id, st, true, rev, true)
			return nil
		}
		if !casErr(err) {
			return fmt.Errorf("minion %s: presence: %w", id, err)
		}
	}
	return fmt.Errorf("minion %s: presence: too many conflicting writes", id)
}

// Forget removes a minion (its key was deleted or rejected).
func (p *Presence) Forget(ctx context.Context, id string) error {
	err := p.minions.kv.Purge(ctx, kvKey(id))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("minion %s: presence: %w", id, err)
	}
	return nil
}

// Close stops the heartbeat and the watches; the beat entry ages out.
func (p *Presence) Close() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
	p.minions.stop()
	if p.beats != nil {
		_ = p.beats.Unsubscribe()
	}
	// Tell the others at once rather than after deadAfter.
	p.beat(true)
	_ = p.n.nc.Flush()
}
