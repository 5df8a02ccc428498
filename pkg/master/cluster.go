package master

// Several masters as one (config `cluster:`): the seams are swapped for
// pkg/cluster's JetStream implementations, every master's registry is fed
// from the shared minion presence, jobs for minions held by another master
// are routed to it over NATS, and returns come back on a per-jid subject.
// Nothing here runs unless cluster: is set.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/cluster"
	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/job"
	"github.com/brine-cm/brine/pkg/pki"
	"github.com/brine-cm/brine/pkg/reactor"
	"github.com/brine-cm/brine/pkg/registry"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// clusterReadyTimeout bounds how long New waits for a JetStream quorum:
// the first master of a fresh cluster waits for a majority of its peers.
var clusterReadyTimeout = 5 * time.Minute

type clusterState struct {
	node     *cluster.Node
	bus      *cluster.Bus // nil when the caller supplied a bus
	keys     *cluster.KeyStore
	jobs     *cluster.JobStore
	mine     *cluster.MineStore
	presence *cluster.Presence
	react    *cluster.ReactQueue

	routeSubs []*nats.Subscription

	presMu   sync.Mutex
	presDone map[*conn]chan struct{} // presence write of each live stream

	// The reactor's view of the bus: Subscribe yields only what this
	// master took from the work queue (feed), Publish goes to everyone.
	feed        *event.Local
	hookReactor *reactor.Reactor
	forward     chan forwardItem
	forwardDrop uint64
	draining    atomic.Bool // Drain called: work items are left to the others
	// ready: every store is open. Watch callbacks before that are moot
	// (nothing is connected yet; startCluster syncs the registry).
	ready  atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type forwardItem struct {
	ev event.Event
	id string
}

// setupCluster joins the cluster and swaps in the shared stores. It runs
// in New once the registry exists (the watches feed it).
func (m *Master) setupCluster(opts Options) error {
	cc := m.cfg.Cluster
	if cc == nil {
		return nil
	}
	secret := ""
	if cc.SecretFile != "" {
		b, err := os.ReadFile(cc.SecretFile)
		if err != nil {
			return fmt.Errorf("cluster.secret_file: %w", err)
		}
		if secret = strings.TrimSpace(string(b)); secret == "" {
			return fmt.Errorf("cluster.secret_file %s is empty", cc.SecretFile)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	node, err := cluster.Start(ctx, *cc, m.cfg.DataDir, cluster.Options{Logger: m.log, Secret: secret, ReadyTimeout: clusterReadyTimeout})
	if err != nil {
		return err
	}
	cs := &clusterState{node: node, feed: event.NewLocal(), forward: make(chan forwardItem, 4096), presDone: map[*conn]chan struct{}{}}
	m.cluster = cs
	fail := func(err error) error {
		m.closeCluster()
		m.cluster = nil
		return err
	}
	if opts.Bus == nil {
		cs.bus = cluster.NewBus(node)
		lb := cs.bus.Local()
		lb.OnPublish = func(ev event.Event) { m.metrics.event(ev.Tag) }
		lb.OnDrop = func(event.Event) { m.metrics.eventsDrop.Inc() }
		cs.bus.OnEvent = m.forwardToReactor
		m.bus = cs.bus
	}
	if opts.Keys == nil {
		ks, err := cluster.OpenKeyStore(ctx, node, m.onKeyChange)
		if err != nil {
			return fail(err)
		}
		cs.keys = ks
		// A master joining with keys of its own (it ran alone before)
		// brings them along; ids the cluster already knows keep the
		// cluster's decision.
		ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := ks.Import(ictx, m.keys)
		icancel()
		if err != nil {
			m.log.Warn("importing local keys into the cluster", "err", err)
		} else if n > 0 {
			m.log.Info("imported local keys into the cluster", "keys", n)
		}
		m.keys = ks
	}
	if opts.Jobs == nil {
		keep := time.Duration(m.cfg.KeepJobs * float64(time.Hour))
		js, err := cluster.OpenJobStore(ctx, node, keep)
		if err != nil {
			return fail(err)
		}
		cs.jobs = js
		m.jobs = js
	}
	if cs.mine, err = cluster.OpenMineStore(ctx, node); err != nil {
		return fail(err)
	}
	if cs.presence, err = cluster.OpenPresence(ctx, node, m.onPresence); err != nil {
		return fail(err)
	}
	if cs.react, err = cluster.OpenReactQueue(ctx, node, cluster.ReactOptions{}); err != nil {
		return fail(err)
	}
	cs.ready.Store(true)
	m.statusHooks["cluster"] = func() any {
		st := node.Status()
		masters := cs.presence.Masters()
		sort.Strings(masters)
		st["masters"] = masters
		return st
	}
	return nil
}

// startCluster begins receiving: the bus, routed jobs, the reactor's work
// queue. The registry is filled from the shared presence first.
func (m *Master) startCluster(ctx context.Context) error {
	cs := m.cluster
	if cs == nil {
		return nil
	}
	cs.presence.Each(func(st cluster.MinionState) { m.onPresence(st, true) })
	if cs.bus != nil {
		if err := cs.bus.Start(); err != nil {
			return err
		}
	}
	for _, subj := range []string{m.routeSubject(cs.node.ID()), m.routeAllSubject()} {
		sub, err := cs.node.Conn().Subscribe(subj, func(msg *nats.Msg) { go m.handleRoute(msg) })
		if err != nil {
			return fmt.Errorf("cluster: route subscription: %w", err)
		}
		cs.routeSubs = append(cs.routeSubs, sub)
	}
	if err := cs.node.Conn().Flush(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cs.cancel = cancel
	if err := m.startClusterReactor(ctx); err != nil {
		cancel()
		return err
	}
	return nil
}

// closeCluster leaves the cluster; last in Stop, after the minion streams
// have ended and their disconnects were recorded.
func (m *Master) closeCluster() {
	cs := m.cluster
	if cs == nil {
		return
	}
	if cs.cancel != nil {
		cs.cancel()
	}
	cs.wg.Wait()
	for _, sub := range cs.routeSubs {
		_ = sub.Unsubscribe()
	}
	if cs.bus != nil {
		cs.bus.Close()
	}
	if cs.presence != nil {
		cs.presence.Close()
	}
	if cs.keys != nil {
		cs.keys.Close()
	}
	if cs.mine != nil {
		cs.mine.Close()
	}
	cs.node.Close()
}

func (m *Master) routeSubject(instance string) string {
	return "brine." + m.cfg.Cluster.Name + ".route." + instance
}

func (m *Master) returnSubject(jid string) string {
	return "brine." + m.cfg.Cluster.Name + ".ret." + jid
}

// onKeyChange applies a key decision made on any master to this one:
// a parked pending minion is told it may come in; a rejected or deleted
// one is cut off here too.
func (m *Master) onKeyChange(ch cluster.KeyChange) {
	if cs := m.cluster; cs == nil || !cs.ready.Load() {
		return
	}
	if cluster.Has(ch.After, pki.Accepted) {
		m.acceptPending(ch.ID)
		// The buckets are watched separately: where the minion is may
		// have arrived before its key did, and was not registered then.
		if cs := m.cluster; !cluster.Has(ch.Before, pki.Accepted) {
			if st, ok := cs.presence.Lookup(ch.ID); ok {
				m.onPresence(st, true)
			}
		}
	}
	lost := cluster.Has(ch.Before, pki.Accepted) && !cluster.Has(ch.After, pki.Accepted)
	rejected := cluster.Has(ch.After, pki.Rejected) && !cluster.Has(ch.Before, pki.Rejected)
	if !lost && !rejected {
		return
	}
	m.disconnect(ch.ID)
	_ = m.reg.Delete(ch.ID)
	if len(ch.After) == 0 {
		m.deleteGrains(ch.ID)
		if cs := m.cluster; cs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := cs.presence.Forget(ctx, ch.ID); err != nil {
				m.log.Warn("cluster presence", "id", ch.ID, "err", err)
			}
		}
	}
}

// onPresence keeps this master's registry in step with where every
// minion is connected. Only accepted minions are registered, as with one
// master; a minion held here is judged by the local stream.
func (m *Master) onPresence(st cluster.MinionState, known bool) {
	cs := m.cluster
	if !known || cs == nil || !cs.ready.Load() {
		return
	}
	if cs.keys != nil && !cluster.Has(cs.keys.States(st.ID), pki.Accepted) {
		return
	}
	connected := st.Connected
	if st.Master == cs.node.ID() {
		m.mu.Lock()
		connected = m.conns[st.ID] != nil
		m.mu.Unlock()
	}
	// Re-indexing a minion's grains is the registry's dearest write; most
	// changes (a reconnect, a master's heartbeat going silent) only move
	// the connection state.
	if old, ok := m.reg.Get(st.ID); ok && reflect.DeepEqual(old.Grains, st.Grains) {
		if old.Connected != connected {
			at := st.LastSeen
			if connected {
				at = st.ConnectedAt
			}
			_ = m.reg.SetConnected(st.ID, connected, at)
		}
		return
	}
	if err := m.reg.Upsert(registry.Minion{ID: st.ID, Grains: st.Grains, Connected: connected, LastSeen: st.LastSeen, ConnectedAt: st.ConnectedAt}); err != nil {
		m.log.Warn("registry from cluster presence", "id", st.ID, "err", err)
	}
}

// clusterConnected records that this master holds the minion's stream.
// The write runs aside: right after a master dies, the presence bucket
// may need seconds to elect a leader, and the minion (with returns to
// resend) is served meanwhile. clusterDisconnected waits for it, so the
// two land in order.
func (m *Master) clusterConnected(c *conn, at time.Time) {
	cs := m.cluster
	if cs == nil {
		return
	}
	done := make(chan struct{})
	cs.presMu.Lock()
	cs.presDone[c] = done
	cs.presMu.Unlock()
	go func() {
		defer close(done)
		if err := cs.presence.Connected(c.ctx, c.id, c.grains, at); err != nil && c.ctx.Err() == nil {
			m.log.Warn("cluster presence: other masters will not route jobs to this minion", "id", c.id, "err", err)
		}
	}()
}

func (m *Master) clusterDisconnected(c *conn, at time.Time) {
	cs := m.cluster
	if cs == nil {
		return
	}
	cs.presMu.Lock()
	done := cs.presDone[c]
	delete(cs.presDone, c)
	cs.presMu.Unlock()
	if done != nil {
		<-done // bounded by the retries in Connected
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cs.presence.Disconnected(ctx, c.id, at); err != nil {
		m.log.Warn("cluster presence", "id", c.id, "err", err)
	}
}

// remoteHolder names the live master (not this one) holding a minion's
// stream, or "".
func (m *Master) remoteHolder(id string) string {
	cs := m.cluster
	if cs == nil {
		return ""
	}
	st, ok := cs.presence.Lookup(id)
	if !ok || !st.Connected || st.Master == cs.node.ID() {
		return ""
	}
	return st.Master
}

// newJID issues a jid unique across the cluster: the job cache refuses a
// jid another master issued in the same microsecond.
func (m *Master) newJID(ctx context.Context) (string, error) {
	jid := job.NewJID(time.Now())
	cs := m.cluster
	if cs == nil || cs.jobs == nil {
		return jid, nil
	}
	for attempt := 0; ; attempt++ {
		err := cs.jobs.Claim(ctx, jid)
		if err == nil {
			return jid, nil
		}
		if !errors.Is(err, cluster.ErrJIDTaken) || attempt >= 10 {
			return "", fmt.Errorf("job cache: %w", err)
		}
		jid = job.NewJID(time.Now())
	}
}

// gatherReturns subscribes the tracker to returns recorded on other
// masters; the returned func unsubscribes.
func (m *Master) gatherReturns(jid string, tr *tracker) func() {
	cs := m.cluster
	if cs == nil {
		return func() {}
	}
	sub, err := cs.node.Conn().Subscribe(m.returnSubject(jid), func(msg *nats.Msg) {
		r := &pb.Return{}
		if err := proto.Unmarshal(msg.Data, r); err != nil || r.GetJid() != jid {
			return
		}
		select {
		case tr.returns <- r:
		default:
		}
	})
	if err != nil {
		m.log.Warn("cluster: returns from other masters will be missed", "jid", jid, "err", err)
		return func() {}
	}
	return func() { _ = sub.Unsubscribe() }
}

// forwardReturn sends a return to the master waiting for it, if any.
func (m *Master) forwardReturn(r *pb.Return) {
	cs := m.cluster
	if cs == nil {
		return
	}
	b, err := proto.Marshal(r)
	if err != nil {
		return
	}
	if err := cs.node.Conn().Publish(m.returnSubject(r.GetJid()), b); err != nil {
		m.log.Warn("cluster: return not forwarded", "jid", r.GetJid(), "id", r.GetId(), "err", err)
	}
}

// routedJob is a job for minions whose streams another master holds.
type routedJob struct {
	JID    string   `json:"jid"`
	Fun    string   `json:"fun"`
	User   string   `json:"user"`
	Args   []byte   `json:"args"`   // structpb.ListValue
	Kwargs []byte   `json:"kwargs"` // structpb.Struct
	IDs    []string `json:"ids"`
	Origin string   `json:"origin"` // the publishing master's instance
}

// routedReply lists the minions the job reached: sent, or answered at
// once with a failed return (a render error).
type routedReply struct {
	Reached []string `json:"reached"`
	Error   string   `json:"error,omitempty"`
}

// routeAllSubject is where a job for minions of unknown whereabouts goes:
// every master delivers to those it holds.
func (m *Master) routeAllSubject() string { return "brine." + m.cfg.Cluster.Name + ".routeall" }

// routeRemote hands minions held by other masters their job and returns
// those it reached. remote[""] are minions no live master is known to
// hold; they, and those a master did not reach (it died, or the minion
// just moved), are asked of every master at once. The shared presence is
// only a hint: it lags while its bucket elects a leader after a master
// died, and routing must not wait for that.
func (m *Master) routeRemote(ctx context.Context, started *pb.JobStarted, rec *job.Job, remote map[string][]string,
	args *structpb.ListValue, kwargs *structpb.Struct, timeout time.Duration) []string {
	if len(remote) == 0 {
		return nil
	}
	ab, _ := proto.Marshal(args)
	kb, _ := proto.Marshal(kwargs)
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	self := m.cluster.node.ID()
	base := routedJob{JID: started.Jid, Fun: rec.Fun, User: rec.User, Args: ab, Kwargs: kb, Origin: self}
	var mu sync.Mutex
	var sent []string
	unknown := append([]string(nil), remote[""]...)
	var wg sync.WaitGroup
	for master, ids := range remote {
		if master == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rj := base
			rj.IDs = ids
			req, _ := json.Marshal(rj)
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			msg, err := m.cluster.node.Conn().RequestWithContext(rctx, m.routeSubject(master), req)
			var rep routedReply
			if err == nil {
				err = json.Unmarshal(msg.Data, &rep)
			}
			if err == nil && rep.Error != "" {
				err = errors.New(rep.Error)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				m.log.Debug("job not routed to the master holding these minions; asking every master", "jid", started.Jid, "master", master, "minions", len(ids), "err", err)
				unknown = append(unknown, ids...)
				return
			}
			got := map[string]bool{}
			for _, id := range rep.Reached {
				got[id] = true
			}
			for _, id := range ids {
				if got[id] {
					sent = append(sent, id)
				} else {
					unknown = append(unknown, id)
				}
			}
		}()
	}
	wg.Wait()
	var offline []string
	if len(unknown) > 0 {
		rj := base
		rj.IDs = unknown
		got := map[string]bool{}
		for _, id := range m.broadcastRoute(ctx, rj) {
			got[id] = true
		}
		for _, id := range unknown {
			if got[id] {
				sent = append(sent, id)
			} else {
				offline = append(offline, id)
			}
		}
	}
	if len(offline) > 0 {
		sort.Strings(offline)
		started.Offline = append(started.Offline, offline...)
		sort.Strings(started.Offline)
		rec.Offline = started.Offline
		if err := m.jobs.SaveJob(ctx, *rec); err != nil {
			m.log.Error("job cache", "jid", started.Jid, "err", err)
		}
	}
	return sent
}

// broadcastRoute offers a job to every other master and gathers which
// minions they reached, until all live masters answered or a short wait
// ends.
func (m *Master) broadcastRoute(ctx context.Context, rj routedJob) []string {
	cs := m.cluster
	others := len(cs.presence.Masters()) - 1
	if others <= 0 {
		return nil
	}
	nc := cs.node.Conn()
	inbox := nc.NewRespInbox()
	replies := make(chan *nats.Msg, others+8)
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		m.log.Warn("job not offered to the other masters", "jid", rj.JID, "err", err)
		return nil
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(rj)
	if err := nc.PublishMsg(&nats.Msg{Subject: m.routeAllSubject(), Reply: inbox, Data: req}); err != nil {
		m.log.Warn("job not offered to the other masters", "jid", rj.JID, "err", err)
		return nil
	}
	timer := time.NewTimer(2 * time.Second)
	defer timer.Stop()
	var reached []string
	for n := 0; n < others; n++ {
		select {
		case msg := <-replies:
			var rep routedReply
			if json.Unmarshal(msg.Data, &rep) == nil {
				reached = append(reached, rep.Reached...)
			}
		case <-timer.C:
			return reached
		case <-ctx.Done():
			return reached
		}
	}
	return reached
}

// handleRoute delivers a job another master routed here to the minions
// whose streams this master holds, and says which it reached.
func (m *Master) handleRoute(msg *nats.Msg) {
	reply := func(r routedReply) {
		b, _ := json.Marshal(r)
		_ = msg.Respond(b)
	}
	var rj routedJob
	if err := json.Unmarshal(msg.Data, &rj); err != nil {
		reply(routedReply{Error: "bad routed job: " + err.Error()})
		return
	}
	if rj.Origin == m.cluster.node.ID() {
		return // our own offer to everyone
	}
	if _, err := job.ParseJID(rj.JID); err != nil {
		reply(routedReply{Error: err.Error()})
		return
	}
	args, kwargs := &structpb.ListValue{}, &structpb.Struct{}
	if err := proto.Unmarshal(rj.Args, args); err != nil {
		reply(routedReply{Error: "routed job arguments: " + err.Error()})
		return
	}
	if err := proto.Unmarshal(rj.Kwargs, kwargs); err != nil {
		reply(routedReply{Error: "routed job keyword arguments: " + err.Error()})
		return
	}
	ctx := context.Background()
	out := routedReply{Reached: []string{}}
	for _, id := range rj.IDs {
		m.mu.Lock()
		c := m.conns[id]
		m.mu.Unlock()
		if c == nil {
			continue
		}
		pj := &pb.Job{Jid: rj.JID, Fun: rj.Fun, Args: args, Kwargs: kwargs, User: rj.User}
		if m.deliver(ctx, c, pj) != notDelivered {
			out.Reached = append(out.Reached, id)
		}
	}
	reply(out)
}
