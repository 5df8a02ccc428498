// Package reactor is Salt's reactor: rules map event tags to reactor SLS
// files; for each matching event the files are rendered (Jinja, then
// YAML; or Salt's #!py on Starlark) with the event's tag and data as
// context, and the resulting reactions start jobs (local.*) or fire
// events (runner.event.send).
//
// Webhook events reach the reactor through Accept, which spools them to
// disk before the sender is answered, so a deploy hook acknowledged with
// 200 is reacted to even if the master dies a moment later. Other events
// come from the bus and are reacted to at most once, as in Salt.
package reactor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/jinja"
	"github.com/brine-cm/brine/pkg/pyrender"
	"github.com/brine-cm/brine/pkg/webhook"
)

// Events the reactor fires about itself.
const (
	TagStarted  = "reactor/started"
	TagFailed   = "reactor/failed"
	TagOverflow = "reactor/overflow"
)

// SpoolKey marks, in the data of an event Accept publishes to the bus,
// the spool entry that owns it. The reactor's bus subscription skips
// marked events: the spool already guarantees their reaction, and
// reacting to the bus copy as well would run it twice. A forged marker
// can only suppress a reaction, never cause one.
const SpoolKey = "_brine_spool"

// User is the job user recorded for jobs reactions start.
const User = "reactor"

// Defaults, named as Salt's master options.
const (
	DefaultWorkers           = 10     // reactor_worker_threads
	DefaultQueueHighWater    = 10_000 // reactor_worker_hwm
	DefaultDeliveryRetention = 7 * 24 * time.Hour
	maxReactorFile           = 1 << 20
	busBuffer                = 4096
)

// Local starts jobs for local.* reactions; the master implements it.
type Local interface {
	PublishAsync(ctx context.Context, tgt, tgtType, fun string, args []any, kwargs map[string]any, user string) (jid string, err error)
}

// Preparer is a Local that can split a publish in two (or decline, with
// a nil Prepared and error, and have it published whole): the part whose
// order does not matter (resolving the target, allocating the jid, saving
// the job) and the part that must keep the tag's order (announcing the
// job and delivering it to minions). The reactor prepares reactions to
// one tag in parallel and sends them in arrival order, so a busy hook
// path is limited by the send alone.
type Preparer interface {
	PreparePublish(ctx context.Context, tgt, tgtType, fun string, args []any, kwargs map[string]any, user string) (Prepared, error)
}

// Prepared is a publish ready to send. Exactly one of Send or Cancel is
// called.
type Prepared interface {
	Send(ctx context.Context) (jid string, err error)
	// Cancel gives up a prepared publish that will not be sent (shutdown).
	Cancel()
}

// Config configures a Reactor.
type Config struct {
	Rules          []Rule
	Workers        int // reactor_worker_threads
	QueueHighWater int // reactor_worker_hwm
	// SpoolDir holds accepted webhook events until reacted to, and the
	// delivery ids already reacted to.
	SpoolDir string
	// Secrets names secret files for salt['hook.verify_github'](data, name).
	Secrets map[string]string
	// FileRoots resolve salt:// reactor file paths (base environment).
	FileRoots []string
	// DeliveryRetention is how long reacted-to delivery ids are kept to
	// refuse replays across restarts.
	DeliveryRetention time.Duration
	// Opts is the master's configuration as #!py reactors see it in
	// __opts__, keys brine does not know included (Salt passes them
	// through, and reactors keep their own settings there).
	Opts map[string]any
	// PyLimits bound each run of a #!py reactor file.
	PyLimits pyrender.Limits
}

// Stats is a snapshot for metrics and `brinectl reactor status`.
type Stats struct {
	QueueDepth int
	HighWater  int
	// Overflow counts events not queued because the queue was full.
	Overflow uint64
	// BusDropped counts events the bus dropped for the reactor's
	// subscription because it fell behind.
	BusDropped uint64
	// Spooled is the number of accepted events not yet reacted to.
	Spooled int
	// Reactions by outcome: "started" (job published or event sent),
	// "failed" (render, parse or publish error).
	Reactions map[string]uint64
}

type job struct {
	tag     string
	data    map[string]any
	spoolID string // "" for bus events
	// durable, when set, yields the spool write's outcome: the reaction
	// may be rendered before, but acts only after a nil.
	durable  <-chan error
	delivery string // delivery key, "" when none
	// after is closed when the previous event with the same tag has been
	// reacted to; done is closed when this one has (see enqueue).
	after, done chan struct{}
}

// Reactor runs reactions. Accept may be called before Run; queued work
// waits for Run.
type Reactor struct {
	cfg   Config
	bus   event.Bus
	local Local
	log   *slog.Logger
	spool *spool
	rules atomic.Pointer[[]Rule]

	queue chan job
	// orderMu makes "link to the tag's previous event, then queue" one
	// step, so the queue order and the per-tag chain always agree.
	orderMu  sync.Mutex
	lastOf   map[string]chan struct{}
	reserved atomic.Int64 // queued jobs plus slots being filled
	active   atomic.Int64 // jobs being processed or recorded
	// finishing counts records of reacted events not yet durable; Run
	// returns only after them.
	finishing sync.WaitGroup
	draining  atomic.Bool
	stop      chan struct{} // closed when Drain finished or gave up
	stopOnce  sync.Once
	running   atomic.Bool

	mu       sync.Mutex
	inQueue  map[string]bool   // spool ids queued in memory
	inFlight map[string]string // delivery key -> spool id, until recorded
	outcomes map[string]uint64

	overflow     atomic.Uint64
	lastOverflow atomic.Int64
	sub          atomic.Pointer[event.Subscription]

	py   pyrender.Cache // compiled #!py reactor files
	opts atomic.Pointer[map[string]any]
}

// SetOpts replaces what #!py reactor files see as __opts__ (SIGHUP
// reload).
func (r *Reactor) SetOpts(opts map[string]any) {
	if opts == nil {
		opts = map[string]any{}
	}
	r.opts.Store(&opts)
}

// New opens the spool and returns a Reactor; it starts nothing.
func New(cfg Config, bus event.Bus, local Local, log *slog.Logger) (*Reactor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if local == nil {
		return nil, errors.New("reactor: no Local to start jobs with")
	}
	if cfg.SpoolDir == "" {
		return nil, errors.New("reactor: spool dir is not set")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueHighWater <= 0 {
		cfg.QueueHighWater = DefaultQueueHighWater
	}
	if cfg.DeliveryRetention <= 0 {
		cfg.DeliveryRetention = DefaultDeliveryRetention
	}
	for name, p := range cfg.Secrets {
		if _, err := webhook.ReadSecret(p); err != nil {
			return nil, fmt.Errorf("reactor: secret %q: %w", name, err)
		}
	}
	sp, err := openSpool(cfg.SpoolDir)
	if err != nil {
		return nil, err
	}
	r := &Reactor{
		cfg: cfg, bus: bus, local: local, log: log, spool: sp,
		queue:    make(chan job, cfg.QueueHighWater),
		stop:     make(chan struct{}),
		inQueue:  map[string]bool{},
		inFlight: map[string]string{},
		outcomes: map[string]uint64{},
	}
	r.SetRules(cfg.Rules)
	r.SetOpts(cfg.Opts)
	return r, nil
}

// Rules returns the current rules.
func (r *Reactor) Rules() []Rule {
	return append([]Rule(nil), *r.rules.Load()...)
}

// SetRules replaces the rules (SIGHUP reload); events already queued are
// matched against the rules current when a worker takes them.
func (r *Reactor) SetRules(rules []Rule) {
	cp := append([]Rule(nil), rules...)
	r.rules.Store(&cp)
}

func (r *Reactor) matches(tag string) []string {
	var files []string
	for _, rl := range *r.rules.Load() {
		if event.MatchTag(rl.TagGlob, tag) {
			files = append(files, rl.Files...)
		}
	}
	return files
}

// Stats returns a snapshot.
func (r *Reactor) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Stats{
		QueueDepth: len(r.queue),
		HighWater:  r.cfg.QueueHighWater,
		Overflow:   r.overflow.Load(),
		Spooled:    len(r.inQueue),
		Reactions:  make(map[string]uint64, len(r.outcomes)),
	}
	if s := r.sub.Load(); s != nil {
		st.BusDropped = s.Dropped()
	}
	for k, v := range r.outcomes {
		st.Reactions[k] = v
	}
	return st
}

// tryReserve claims a queue slot, so that a send on r.queue never blocks.
func (r *Reactor) tryReserve() bool {
	if r.reserved.Add(1) > int64(r.cfg.QueueHighWater) {
		r.reserved.Add(-1)
		return false
	}
	return true
}

// Accept is the webhook's durable Sink: the event is on disk (fsynced)
// and queued when it returns nil. A delivery id already accepted, or
// already reacted to within DeliveryRetention, gives webhook.ErrReplayed.
func (r *Reactor) Accept(ctx context.Context, tag string, data map[string]any, deliveryID string) error {
	if r.draining.Load() {
		return fmt.Errorf("reactor is draining: %w", webhook.ErrUnavailable)
	}
	key := ""
	if deliveryID != "" {
		key = deliveryKey(tag, deliveryID)
		r.mu.Lock()
		_, dup := r.inFlight[key]
		if !dup {
			dup = r.spool.isDelivered(key)
		}
		if !dup {
			r.inFlight[key] = "" // reserved; the spool id follows
		}
		r.mu.Unlock()
		if dup {
			return fmt.Errorf("delivery %s: %w", deliveryID, webhook.ErrReplayed)
		}
	}
	release := func() {
		if key != "" {
			r.mu.Lock()
			delete(r.inFlight, key)
			r.mu.Unlock()
		}
	}
	if !r.tryReserve() {
		release()
		r.overflowed(ctx, tag)
		return fmt.Errorf("reactor queue at high water (%d): %w", r.cfg.QueueHighWater, webhook.ErrUnavailable)
	}
	now := time.Now()
	id := newID(now)
	// Claim the id before the file exists, so a concurrent replay never
	// queues it a second time.
	r.mu.Lock()
	r.inQueue[id] = true
	if key != "" {
		r.inFlight[key] = id
	}
	r.mu.Unlock()
	// Queued before the write, so a worker renders the reaction while the
	// fsync runs; it acts only once the write is durable, and not at all
	// if the write fails (the sender then gets an error, not a 200).
	durable := make(chan error, 1)
	r.enqueue(job{tag: tag, data: data, spoolID: id, delivery: key, durable: durable})
	if err := r.spool.write(id, tag, deliveryID, data, now); err != nil {
		r.mu.Lock()
		delete(r.inQueue, id)
		r.mu.Unlock()
		release()
		durable <- err
		return err
	}
	durable <- nil

	if r.bus != nil {
		marked := make(map[string]any, len(data)+1)
		for k, v := range data {
			marked[k] = v
		}
		marked[SpoolKey] = id
		if err := r.bus.Publish(ctx, tag, marked); err != nil {
			r.log.Warn("publishing accepted event", "tag", tag, "err", err)
		}
	}
	return nil
}

func (r *Reactor) overflowed(ctx context.Context, tag string) {
	n := r.overflow.Add(1)
	now := time.Now().UnixNano()
	last := r.lastOverflow.Load()
	// One event and log line per second at most: an overloaded reactor
	// must not also flood the bus, but it must never be silent.
	if now-last < int64(time.Second) || !r.lastOverflow.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn("reactor queue full, event not reacted to", "tag", tag, "overflow_total", n, "high_water", r.cfg.QueueHighWater)
	r.fire(ctx, TagOverflow, map[string]any{"tag": tag, "overflow": n, "high_water": r.cfg.QueueHighWater})
}

func (r *Reactor) fire(ctx context.Context, tag string, data map[string]any) {
	if r.bus == nil {
		return
	}
	if err := r.bus.Publish(context.WithoutCancel(ctx), tag, data); err != nil {
		r.log.Warn("firing reactor event", "tag", tag, "err", err)
	}
}

// Run reacts until ctx is cancelled or Drain completes. It replays the
// spool first-in first-out, subscribes to the bus and runs Workers
// workers. Cancelling ctx abandons queued work: spooled events stay on
// disk for the next start.
func (r *Reactor) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("reactor: already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if n, err := r.spool.prune(time.Now().Add(-r.cfg.DeliveryRetention)); err != nil {
		r.log.Warn("pruning delivery ids", "err", err)
	} else if n > 0 {
		r.log.Info("forgot old delivery ids", "count", n)
	}

	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.replay(ctx)
	}()
	if r.bus != nil {
		sub := r.bus.Subscribe("*", busBuffer)
		r.sub.Store(sub)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.dispatch(ctx, sub)
		}()
		defer sub.Close()
	}
	select {
	case <-ctx.Done():
	case <-r.stop:
	}
	cancel()
	if s := r.sub.Load(); s != nil {
		s.Close()
	}
	wg.Wait()
	r.finishing.Wait()
	return nil
}

// replay queues spool entries left by an earlier process (or accepted
// before Run), waiting for queue room rather than overflowing: first an
// earlier version's event files, then the journal's events.
func (r *Reactor) replay(ctx context.Context) {
	for _, err := range r.spool.damaged {
		r.log.Error("reactor spool damaged", "err", err)
		r.fire(ctx, TagFailed, map[string]any{"tag": "", "file": "", "error": err.Error()})
	}
	ids, temps, err := r.spool.list()
	if err != nil {
		r.log.Error("reading reactor spool", "err", err)
		return
	}
	r.mu.Lock()
	for _, id := range temps {
		// Accept claims an id before creating its temp file, so an
		// unclaimed temp file belongs to a write that died unacknowledged.
		if !r.inQueue[id] {
			r.spool.removeTemp(id)
		}
	}
	r.mu.Unlock()
	n := 0
	for _, id := range ids {
		r.mu.Lock()
		queued := r.inQueue[id]
		r.mu.Unlock()
		if queued {
			continue
		}
		rec, data, err := r.spool.read(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // reacted to meanwhile by a job Accept queued
		}
		if err != nil {
			r.log.Error("unreadable spool entry, quarantined", "id", id, "err", err)
			r.fire(ctx, TagFailed, map[string]any{"tag": rec.Tag, "file": "", "error": err.Error()})
			if qerr := r.spool.quarantine(id); qerr != nil {
				r.log.Error("quarantining spool entry", "id", id, "err", qerr)
			}
			continue
		}
		if !r.replayOne(ctx, rec, data) {
			return
		}
		n++
	}
	for _, e := range r.spool.replayed {
		if !r.replayOne(ctx, e.rec, e.data) {
			return
		}
		n++
	}
	r.spool.replayed = nil
	if n > 0 {
		r.log.Info("replayed reactor spool", "entries", n)
	}
}

// replayOne queues one spooled event; false when the reactor stopped.
func (r *Reactor) replayOne(ctx context.Context, rec record, data map[string]any) bool {
	id := rec.ID
	key := ""
	if rec.Delivery != "" {
		key = deliveryKey(rec.Tag, rec.Delivery)
		if r.spool.isDelivered(key) {
			// Reacted to and recorded; only the "done" record was lost.
			r.spool.done(id, "")
			return true
		}
	}
	for !r.tryReserve() {
		select {
		case <-ctx.Done():
			return false
		case <-r.stop:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.mu.Lock()
	r.inQueue[id] = true
	if key != "" {
		r.inFlight[key] = id
	}
	r.mu.Unlock()
	r.enqueue(job{tag: rec.Tag, data: data, spoolID: id, delivery: key})
	return true
}

// dispatch queues bus events that match a rule, dropping (and counting)
// when the queue is at its high-water mark: the bus must never block.
func (r *Reactor) dispatch(ctx context.Context, sub *event.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if _, spooled := ev.Data[SpoolKey]; spooled || r.draining.Load() {
				continue
			}
			if len(r.matches(ev.Tag)) == 0 {
				continue
			}
			if !r.tryReserve() {
				r.overflowed(ctx, ev.Tag)
				continue
			}
			r.enqueue(job{tag: ev.Tag, data: ev.Data})
		}
	}
}

// enqueue queues j behind the previous event with the same tag: reactions
// to one tag run in the order the events came in, so two pushes to
// /hook/deploy/web in quick succession publish their deploys in push
// order and the later commit ends up live. Different tags still run in
// parallel. The caller holds a reservation, so the send does not block.
func (r *Reactor) enqueue(j job) {
	r.orderMu.Lock()
	defer r.orderMu.Unlock()
	if r.lastOf == nil {
		r.lastOf = map[string]chan struct{}{}
	}
	j.after = r.lastOf[j.tag]
	j.done = make(chan struct{})
	r.lastOf[j.tag] = j.done
	r.queue <- j
}

// finished releases the next event of j's tag.
func (r *Reactor) finished(j job) {
	r.orderMu.Lock()
	defer r.orderMu.Unlock()
	close(j.done)
	if r.lastOf[j.tag] == j.done {
		delete(r.lastOf, j.tag)
	}
}

func (r *Reactor) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.stop:
			return
		case j := <-r.queue:
			r.active.Add(1)
			r.reserved.Add(-1)
			r.process(ctx, j)
			r.active.Add(-1)
		}
	}
}

// rendered is one reactor file's reactions for an event, or why it has
// none.
type rendered struct {
	file      string
	reactions []reaction
	err       error
	// prepared[i] is reactions[i]'s publish made ready out of order (a
	// Preparer Local), or its error; nil where not prepared.
	prepared []preparedPublish
}

type preparedPublish struct {
	p   Prepared
	err error
}

// prepare readies the local reactions' publishes, when the Local can.
func (r *Reactor) prepare(ctx context.Context, out []rendered) {
	pl, ok := r.local.(Preparer)
	if !ok {
		return
	}
	for i := range out {
		rd := &out[i]
		if rd.err != nil {
			continue
		}
		for k, rc := range rd.reactions {
			if rc.Client != "local" {
				continue
			}
			if rd.prepared == nil {
				rd.prepared = make([]preparedPublish, len(rd.reactions))
			}
			p, err := pl.PreparePublish(ctx, rc.Tgt, rc.TgtType, rc.Fun, rc.Args, rc.Kwargs, User)
			if p == nil && err == nil {
				continue // declined: published whole, in order
			}
			if err != nil {
				err = fmt.Errorf("local.%s on %s %q: %w", rc.Fun, rc.TgtType, rc.Tgt, err)
			}
			rd.prepared[k] = preparedPublish{p: p, err: err}
		}
	}
}

// cancelPrepared gives up publishes prepared but never sent.
func cancelPrepared(out []rendered) {
	for _, rd := range out {
		for _, pp := range rd.prepared {
			if pp.p != nil {
				pp.p.Cancel()
			}
		}
	}
}

// process reacts to one event. Rendering (template, YAML, #!py) has no
// side effects and runs in parallel on any worker; only the step that acts
// (publishing jobs, sending events) waits for the previous event of the
// same tag, and recording the event as reacted to happens after the next
// one is released. So one busy hook path is limited by its publishes, not
// by rendering and spool writes as well.
func (r *Reactor) process(ctx context.Context, j job) {
	var out []rendered
	for _, file := range r.matches(j.tag) {
		if ctx.Err() != nil {
			break
		}
		rs, err := r.render(file, j.tag, j.data)
		out = append(out, rendered{file: file, reactions: rs, err: err})
	}
	if j.durable != nil {
		var err error
		select {
		case err = <-j.durable:
		case <-ctx.Done():
		}
		if err != nil {
			// Never acknowledged; Accept cleaned up. The tag's next
			// event still waits for this one's turn to pass.
			if j.after != nil {
				select {
				case <-j.after:
				case <-ctx.Done():
				}
			}
			if j.done != nil {
				r.finished(j)
			}
			return
		}
	}
	// Durable: what does not depend on order is done now, in parallel.
	r.prepare(ctx, out)
	// The queue is FIFO, so the event this one waits for was taken by
	// another worker already: waiting here cannot starve it.
	if j.after != nil {
		select {
		case <-j.after:
		case <-ctx.Done():
		}
	}
	for i := range out {
		if ctx.Err() != nil {
			break
		}
		r.act(ctx, j, &out[i])
	}
	cancelPrepared(out)
	// The record that this event was reacted to is queued before the
	// tag's next event may act: records reach the disk in order, so a
	// crash can never leave a later deploy recorded and an earlier one
	// to be replayed after it.
	var m mark
	recording := j.spoolID != "" && ctx.Err() == nil
	if recording {
		m = r.spool.markDone(j.spoolID, j.delivery)
	}
	if j.done != nil {
		r.finished(j)
	}
	if j.spoolID == "" {
		return
	}
	if !recording {
		// Shutting down mid-way: keep the entry for the next start.
		r.mu.Lock()
		delete(r.inQueue, j.spoolID)
		if j.delivery != "" {
			delete(r.inFlight, j.delivery)
		}
		r.mu.Unlock()
		return
	}
	// The worker moves on while the record is committed: waiting here
	// would let a few slow fsyncs hold every worker. Drain still waits
	// for it (active).
	r.active.Add(1)
	r.finishing.Add(1)
	go func() {
		defer r.finishing.Done()
		defer r.active.Add(-1)
		if err := r.spool.finish(m); err != nil {
			r.log.Error("recording reacted event", "tag", j.tag, "err", err)
		}
		r.mu.Lock()
		delete(r.inQueue, j.spoolID)
		if j.delivery != "" {
			delete(r.inFlight, j.delivery)
		}
		r.mu.Unlock()
	}()
}

func (r *Reactor) outcome(o string) {
	r.mu.Lock()
	r.outcomes[o]++
	r.mu.Unlock()
}

// act publishes one file's rendered reactions, in file order.
func (r *Reactor) act(ctx context.Context, j job, rd *rendered) {
	file := rd.file
	if rd.err != nil {
		r.outcome("failed")
		r.log.Error("reactor file failed", "tag", j.tag, "file", file, "err", rd.err)
		r.fire(ctx, TagFailed, map[string]any{"tag": j.tag, "file": file, "error": rd.err.Error()})
		return
	}
	for k, rc := range rd.reactions {
		var jid string
		var err error
		if k < len(rd.prepared) && (rd.prepared[k].p != nil || rd.prepared[k].err != nil) {
			pp := rd.prepared[k]
			rd.prepared[k] = preparedPublish{} // sent: not to be cancelled
			err = pp.err
			if pp.p != nil {
				if jid, err = pp.p.Send(ctx); err != nil {
					err = fmt.Errorf("local.%s on %s %q: %w", rc.Fun, rc.TgtType, rc.Tgt, err)
				}
			}
		} else {
			jid, err = r.execute(ctx, rc)
		}
		if err != nil {
			r.outcome("failed")
			r.log.Error("reaction failed", "tag", j.tag, "file", file, "reaction", rc.ID, "err", err)
			r.fire(ctx, TagFailed, map[string]any{"tag": j.tag, "file": file, "reaction": rc.ID, "error": err.Error()})
			continue
		}
		r.outcome("started")
		r.fire(ctx, TagStarted, map[string]any{"tag": j.tag, "file": file, "reaction": rc.ID,
			"fun": rc.Client + "." + rc.Fun, "jid": jid})
	}
}

func (r *Reactor) execute(ctx context.Context, rc reaction) (string, error) {
	switch rc.Client {
	case "local":
		jid, err := r.local.PublishAsync(ctx, rc.Tgt, rc.TgtType, rc.Fun, rc.Args, rc.Kwargs, User)
		if err != nil {
			return "", fmt.Errorf("local.%s on %s %q: %w", rc.Fun, rc.TgtType, rc.Tgt, err)
		}
		return jid, nil
	case "runner":
		if r.bus == nil {
			return "", errors.New("no event bus to send to")
		}
		if err := r.bus.Publish(ctx, rc.EventTag, rc.EventData); err != nil {
			return "", fmt.Errorf("runner.%s %s: %w", rc.Fun, rc.EventTag, err)
		}
		return "", nil
	}
	return "", fmt.Errorf("unsupported client %q", rc.Client)
}

// Drain stops taking new events (Accept answers ErrUnavailable, bus
// events are ignored) and waits until queued and running reactions are
// done, or ctx ends; then Run returns. Spooled events not reacted to by
// then stay on disk for the next start.
func (r *Reactor) Drain(ctx context.Context) error {
	r.draining.Store(true)
	defer r.stopOnce.Do(func() { close(r.stop) })
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.reserved.Load() == 0 && r.active.Load() == 0 {
			return nil
		}
		if !r.running.Load() && r.active.Load() == 0 {
			return nil // nobody will work the queue; it is all in the spool
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reactor drain: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// render reads a reactor file, renders it and parses the reactions.
// Event data reaches the template only as the `data` variable.
func (r *Reactor) render(file, tag string, data map[string]any) ([]reaction, error) {
	p, err := r.resolve(file)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reactor file: %w", err)
	}
	if len(src) > maxReactorFile {
		return nil, fmt.Errorf("reactor file %s: larger than %d bytes", p, maxReactorFile)
	}
	text := string(src)
	useJinja := true
	if strings.HasPrefix(text, "#!") {
		first, rest, _ := strings.Cut(text, "\n")
		switch pipe := strings.ReplaceAll(strings.TrimSpace(first[2:]), " ", ""); pipe {
		case "jinja|yaml":
		case "yaml":
			useJinja = false
		case "py":
			return r.renderPy(p, src, tag, data)
		case "pyobjects", "pydsl":
			return nil, fmt.Errorf("%s: #!%s reactors are not supported; write the reaction in Jinja+YAML or #!py (see docs/reactor.md)", p, pipe)
		default:
			return nil, fmt.Errorf("%s: renderer %q is not supported (want jinja|yaml, yaml or py)", p, pipe)
		}
		text = "\n" + rest // keep line numbers
	}
	if useJinja {
		text, err = jinja.Render(p, text, map[string]any{
			"tag":  tag,
			"data": data,
			"salt": r.saltFuncs(),
		})
		if err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		text = joinSurrogates(text)
	}
	return parseReactions(p, []byte(text))
}

func (r *Reactor) resolve(file string) (string, error) {
	rest, ok := strings.CutPrefix(file, "salt://")
	if !ok {
		return file, nil
	}
	for _, root := range r.cfg.FileRoots {
		p := filepath.Join(root, filepath.FromSlash(rest))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("reactor file %s: not found in file_roots %v", file, r.cfg.FileRoots)
}
