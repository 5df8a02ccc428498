package master

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/job"
	"github.com/brine-cm/brine/pkg/target"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// DefaultTimeout is how long a publish waits for returns when the caller
// gives no timeout (Salt's -t default is 5 s; brine waits a little longer).
const DefaultTimeout = 10 * time.Second

// PublishSpec is one job to run.
type PublishSpec struct {
	Target  string
	TgtType string
	Fun     string
	Args    []any
	Kwargs  map[string]any
	Timeout time.Duration // how long to wait for returns
	User    string
	// BatchReturns makes Publish hand onEvent every return already queued
	// in one PublishEvent_Rets instead of one PublishEvent_Ret each: a
	// caller that forwards events over gRPC then sends one message per
	// batch (ten thousand returns arriving together are a few dozen).
	BatchReturns bool
}

// Bounds of one batch of returns. A batch is kept within the control
// socket's initial flow-control window (64 KiB): a larger one waits for the
// client's window updates, and a client sharing its cores with thousands of
// minions answers late. Measured at 10,000 minions: batches of up to 4,096
// returns or 1 MiB made test.ping's p50 833-891 ms (p99 1.4-1.6 s) against
// 553 ms unbatched; up to 512 returns or 32 KiB, 562 ms (p99 647 ms).
const (
	maxBatchReturns = 512
	maxBatchBytes   = 32 << 10
)

// JobResult is what a synchronous publish gathered.
type JobResult struct {
	JID      string
	Targeted []string // every matched minion
	Offline  []string // matched but not connected
	Missing  []string // sent, no return in time
	Returns  map[string]*pb.Return
}

type tracker struct {
	returns chan *pb.Return
	stop    func() // ends gathering returns from other masters (cluster)
}

// InvalidTargetError marks a target expression that does not parse.
type InvalidTargetError struct{ Err error }

func (e *InvalidTargetError) Error() string { return e.Err.Error() }
func (e *InvalidTargetError) Unwrap() error { return e.Err }

// resolve turns a target into the known minions it matches. A list target
// naming minions never seen reports them too, so they show up as offline
// rather than vanishing.
func (m *Master) resolve(tgt, tgtType string) ([]string, error) {
	typ, err := target.ParseType(tgtType)
	if err != nil {
		return nil, &InvalidTargetError{err}
	}
	matcher, err := target.Compile(tgt, typ)
	if err != nil {
		return nil, &InvalidTargetError{err}
	}
	ids := m.reg.SelectMatcher(matcher)
	if typ == target.List {
		seen := map[string]bool{}
		for _, id := range ids {
			seen[id] = true
		}
		for _, id := range strings.Split(tgt, ",") {
			id = strings.TrimSpace(id)
			if id != "" && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
	}
	return ids, nil
}

// start resolves, records and sends a job; returns arrive on the tracker.
func (m *Master) start(ctx context.Context, spec PublishSpec) (*pb.JobStarted, []string, *tracker, error) {
	if spec.TgtType == "" {
		spec.TgtType = "glob"
	}
	if spec.Fun == "" {
		return nil, nil, nil, &InvalidTargetError{fmt.Errorf("no function given")}
	}
	ids, err := m.resolve(spec.Target, spec.TgtType)
	if err != nil {
		return nil, nil, nil, err
	}
	jid, err := m.newJID(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	started := &pb.JobStarted{Jid: jid, Targeted: ids}

	// In a cluster, minions whose streams another master holds are routed
	// to it (remote: master -> ids; "" for minions no live master is known
	// to hold).
	var holder map[string]string
	if m.cluster != nil {
		holder = map[string]string{}
		for _, id := range ids {
			if h := m.remoteHolder(id); h != "" {
				holder[id] = h
			}
		}
	}
	m.mu.Lock()
	live := map[string]*conn{}
	remote := map[string][]string{}
	for _, id := range ids {
		if h := holder[id]; h != "" {
			remote[h] = append(remote[h], id)
		} else if c := m.conns[id]; c != nil {
			live[id] = c
		} else if m.cluster != nil {
			remote[""] = append(remote[""], id) // holder unknown: ask every master
		} else {
			started.Offline = append(started.Offline, id)
		}
	}
	tr := &tracker{returns: make(chan *pb.Return, len(ids)+1)}
	m.trackers[jid] = tr
	m.mu.Unlock()
	tr.stop = m.gatherReturns(jid, tr)

	if spec.Args == nil {
		spec.Args = []any{}
	}
	if spec.Kwargs == nil {
		spec.Kwargs = map[string]any{}
	}
	rec := job.Job{JID: jid, Fun: spec.Fun, Args: spec.Args, Kwargs: spec.Kwargs, Target: spec.Target, TgtType: spec.TgtType,
		User: spec.User, Minions: ids, Offline: started.Offline, StartTime: time.Now().UTC()}
	if err := m.jobs.SaveJob(ctx, rec); err != nil {
		m.log.Error("job cache", "jid", jid, "err", err)
	}
	m.announceJob(rec)

	args, kwargs, err := jobArgs(spec.Args, spec.Kwargs)
	if err != nil {
		m.dropTracker(jid)
		return nil, nil, nil, err
	}
	sent := make([]string, 0, len(live))
	// Without a preparer every minion gets the same message: one Job, one
	// MasterMessage, read concurrently by the streams' senders (marshalling
	// only reads it), instead of two allocations per minion.
	var shared *pb.MasterMessage
	if m.preparers[spec.Fun] == nil {
		shared = &pb.MasterMessage{Msg: &pb.MasterMessage_Job{Job: &pb.Job{Jid: jid, Fun: spec.Fun, Args: args, Kwargs: kwargs, User: spec.User}}}
	}
	for id, c := range live {
		msg := shared
		if msg == nil {
			// A preparer fills the job in per minion (a compiled state).
			msg = &pb.MasterMessage{Msg: &pb.MasterMessage_Job{Job: &pb.Job{Jid: jid, Fun: spec.Fun, Args: args, Kwargs: kwargs, User: spec.User}}}
		}
		if m.deliverMsg(ctx, c, msg) == delivered {
			sent = append(sent, id)
		}
	}
	sent = append(sent, m.routeRemote(ctx, started, &rec, remote, args, kwargs, spec.Timeout)...)
	sort.Strings(sent)
	return started, sent, tr, nil
}

type delivery int

const (
	notDelivered delivery = iota
	delivered
	answered // not sent: a preparer failed and its return was recorded
)

// deliver prepares and sends a job on one minion's stream.
func (m *Master) deliver(ctx context.Context, c *conn, pj *pb.Job) delivery {
	return m.deliverMsg(ctx, c, &pb.MasterMessage{Msg: &pb.MasterMessage_Job{Job: pj}})
}

// deliverMsg is deliver for a MasterMessage carrying the Job, which may be
// shared by many minions: it is only modified when the job's function has
// a preparer, and then each minion has its own.
func (m *Master) deliverMsg(ctx context.Context, c *conn, msg *pb.MasterMessage) delivery {
	pj := msg.GetJob()
	id, jid := c.id, pj.GetJid()
	if prep := m.preparers[pj.GetFun()]; prep != nil {
		c.mu.Lock()
		grains := c.grains
		c.mu.Unlock()
		if err := prep(ctx, id, grains, pj); err != nil {
			// The minion never sees a job it cannot run; its return
			// says why, like a render error in Salt's highstate.
			m.recordReturn(id, &pb.Return{Jid: jid, Id: id, Fun: pj.GetFun(), Success: false, Retcode: 1,
				Error: err.Error(), Ret: mustValue([]any{err.Error()})})
			return answered
		}
	}
	c.mu.Lock()
	c.outstanding[jid] = struct{}{}
	c.mu.Unlock()
	if !c.enqueue(msg) {
		c.mu.Lock()
		delete(c.outstanding, jid)
		c.mu.Unlock()
		m.log.Warn("job not delivered: minion stream full or closing", "jid", jid, "id", id)
		return notDelivered
	}
	return delivered
}

func mustValue(v any) *structpb.Value {
	pv, _ := wire.Value(v)
	return pv
}

func (m *Master) dropTracker(jid string) {
	m.mu.Lock()
	tr := m.trackers[jid]
	delete(m.trackers, jid)
	m.mu.Unlock()
	if tr != nil && tr.stop != nil {
		tr.stop()
	}
}

// Publish runs a job and waits for its returns or the timeout. onEvent,
// when set, sees the job start and each return as it arrives.
func (m *Master) Publish(ctx context.Context, spec PublishSpec, onEvent func(*pb.PublishEvent)) (*JobResult, error) {
	started, _, tr, err := m.start(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer m.dropTracker(started.Jid)
	if onEvent != nil {
		onEvent(&pb.PublishEvent{Ev: &pb.PublishEvent_Started{Started: started}})
	}
	res := &JobResult{JID: started.Jid, Targeted: started.Targeted, Offline: started.Offline, Returns: map[string]*pb.Return{}}
	offline := map[string]bool{}
	for _, id := range started.Offline {
		offline[id] = true
	}
	want := len(started.Targeted) - len(started.Offline)
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var batch []*pb.Return
	batchBytes := 0
	// take records r; it reports whether r was new.
	take := func(r *pb.Return) bool {
		if _, dup := res.Returns[r.GetId()]; dup {
			return false
		}
		res.Returns[r.GetId()] = r
		return true
	}
	flush := func() {
		if len(batch) > 0 && onEvent != nil {
			onEvent(&pb.PublishEvent{Ev: &pb.PublishEvent_Rets{Rets: &pb.ReturnBatch{Rets: batch}}})
		}
		batch, batchBytes = nil, 0
	}
	// add sends the batch first when r would take it past its bounds: a
	// large return travels alone, as it would unbatched.
	add := func(r *pb.Return) {
		n := proto.Size(r)
		if len(batch) > 0 && (len(batch) >= maxBatchReturns || batchBytes+n > maxBatchBytes) {
			flush()
		}
		batch = append(batch, r)
		batchBytes += n
	}
	for len(res.Returns) < want {
		select {
		case r := <-tr.returns:
			if !take(r) {
				continue
			}
			if !spec.BatchReturns {
				if onEvent != nil {
					onEvent(&pb.PublishEvent{Ev: &pb.PublishEvent_Ret{Ret: r}})
				}
				continue
			}
			// Whatever else has already arrived goes in the same message;
			// nothing waits for more to arrive.
			add(r)
		drain:
			for len(res.Returns) < want {
				select {
				case r := <-tr.returns:
					if take(r) {
						add(r)
					}
				default:
					break drain
				}
			}
			flush()
		case <-timer.C:
			goto done
		case <-ctx.Done():
			goto done
		}
	}
done:
	for _, id := range started.Targeted {
		if _, ok := res.Returns[id]; !ok && !offline[id] {
			res.Missing = append(res.Missing, id)
		}
	}
	if len(res.Missing) > 0 {
		m.metrics.jobTimedOut()
	}
	m.metrics.jobFinished()
	if onEvent != nil {
		onEvent(&pb.PublishEvent{Ev: &pb.PublishEvent_Done{Done: &pb.JobDone{Jid: res.JID, Missing: res.Missing, Offline: res.Offline}}})
	}
	return res, nil
}

// PublishAsync starts a job without waiting (the reactor's local client).
// Returns still land in the job cache and on the bus.
func (m *Master) PublishAsync(ctx context.Context, tgt, tgtType, fun string, args []any, kwargs map[string]any, user string) (string, error) {
	started, _, _, err := m.start(ctx, PublishSpec{Target: tgt, TgtType: tgtType, Fun: fun, Args: args, Kwargs: kwargs, User: user})
	if err != nil {
		return "", err
	}
	m.dropTracker(started.Jid)
	return started.Jid, nil
}

// handleReturn accepts a return only for a job this minion was sent: a
// minion cannot forge returns for other minions or other jobs.
func (m *Master) handleReturn(c *conn, r *pb.Return) {
	ack := func() { c.enqueue(&pb.MasterMessage{Msg: &pb.MasterMessage_Ack{Ack: &pb.ReturnAck{Jid: r.GetJid()}}}) }
	if r.GetId() != "" && r.GetId() != c.id {
		// Refused for good (and acknowledged, so it is not offered again);
		// the job stays outstanding for this minion's genuine return.
		m.refuse(c.ctx, "forged_id", c.id, fmt.Sprintf("return for job %s claims id %q", r.GetJid(), r.GetId()))
		ack()
		return
	}
	c.mu.Lock()
	_, ok := c.outstanding[r.GetJid()]
	delete(c.outstanding, r.GetJid())
	c.mu.Unlock()
	if !ok {
		targeted, already, err := m.wasTargeted(r.GetJid(), c.id)
		if err != nil {
			// The job cache cannot say (a cluster without quorum): leave
			// the return unacknowledged so the minion offers it again.
			m.log.Warn("return held: job cache unavailable", "id", c.id, "jid", r.GetJid(), "err", err)
			return
		}
		if !targeted {
			// A duplicate or foreign return is settled too: acknowledge
			// it so the minion stops resending it.
			if already {
				m.refuse(c.ctx, "duplicate_return", c.id, "return for job "+r.GetJid()+" already recorded")
			} else {
				m.refuse(c.ctx, "unsolicited_return", c.id, "return for job "+r.GetJid()+", which was not sent to this minion")
			}
			ack()
			return
		}
	}
	r.Id = c.id
	m.recordReturn(c.id, r)
	ack()
}

func (m *Master) recordReturn(id string, r *pb.Return) {
	ret := wire.Any(r.GetRet())
	// Counted before anyone hears of the return, so a caller that has all
	// its returns also finds them in /metrics.
	m.metrics.returned(r.GetSuccess() && r.GetError() == "")
	if strings.HasPrefix(r.GetFun(), "state.") && r.GetError() == "" {
		m.metrics.applySecs.Observe(float64(r.GetDurationMs()) / 1000)
	}
	// The waiting caller and the bus hear of the return before the job
	// cache's fsyncs finish: with a thousand minions answering at once the
	// disk, not the network, would otherwise set the pace of every job.
	m.mu.Lock()
	tr := m.trackers[r.GetJid()]
	m.mu.Unlock()
	if tr != nil {
		select {
		case tr.returns <- r:
		default:
		}
	} else if m.cluster != nil {
		m.forwardReturn(r) // the job may have started on another master
	}
	m.publish("job/"+r.GetJid()+"/ret/"+id, map[string]any{"jid": r.GetJid(), "id": id, "fun": r.GetFun(), "return": ret,
		"success": r.GetSuccess(), "retcode": r.GetRetcode(), "error": r.GetError()})
	if err := m.jobs.AddReturn(context.Background(), job.Return{JID: r.GetJid(), MinionID: id, Fun: r.GetFun(), Return: ret,
		Success: r.GetSuccess(), Retcode: int(r.GetRetcode()), Error: r.GetError(), Time: time.Now().UTC(), DurationMs: r.GetDurationMs()}); err != nil {
		m.log.Error("job cache return", "jid", r.GetJid(), "id", id, "err", err)
	}
}

// wasTargeted covers returns a minion finished while disconnected and sends
// after reconnecting (a new stream, so no outstanding entry): the job cache
// says whether the job was meant for it and whether it already returned
// (already: a return from id is recorded).
func (m *Master) wasTargeted(jid, id string) (targeted, already bool, err error) {
	j, rets, err := m.jobs.Get(context.Background(), jid)
	if errors.Is(err, job.ErrNotFound) || errors.Is(err, job.ErrInvalidJID) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	for _, r := range rets {
		if r.MinionID == id {
			return false, true, nil
		}
	}
	return slices.Contains(j.Minions, id), false, nil
}

// announceJob fires job/<jid>/new for a job already in the job cache.
func (m *Master) announceJob(rec job.Job) {
	m.publish("job/"+rec.JID+"/new", map[string]any{"jid": rec.JID, "fun": rec.Fun, "arg": rec.Args, "kwarg": rec.Kwargs,
		"tgt": rec.Target, "tgt_type": rec.TgtType, "minions": rec.Minions, "user": rec.User})
	m.metrics.jobStarted()
}

// jobArgs converts a job's arguments for the wire; what cannot travel is
// the caller's error, not the master's.
func jobArgs(args []any, kwargs map[string]any) (*structpb.ListValue, *structpb.Struct, error) {
	wargs, err := wire.List(args)
	if err != nil {
		return nil, nil, &InvalidTargetError{fmt.Errorf("arguments: %w", err)}
	}
	wkwargs, err := wire.Struct(kwargs)
	if err != nil {
		return nil, nil, &InvalidTargetError{fmt.Errorf("keyword arguments: %w", err)}
	}
	return wargs, wkwargs, nil
}
