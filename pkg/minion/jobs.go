package minion

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/exec"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// maxSeenJobs bounds the jids a minion remembers; at Salt's pace (a few
// jobs a minute) that is days of history.
const maxSeenJobs = 4096

// jidSet is a bounded set of jids, oldest forgotten first.
type jidSet struct {
	mu    sync.Mutex
	set   map[string]struct{}
	order []string
}

// add records jid and reports whether it was new. An empty jid is never
// new: a job without one cannot be returned, let alone deduplicated.
func (s *jidSet) add(jid string) bool {
	if jid == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[string]struct{}{}
	}
	if _, ok := s.set[jid]; ok {
		return false
	}
	if len(s.order) >= maxSeenJobs {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
	s.set[jid] = struct{}{}
	s.order = append(s.order, jid)
	return true
}

// jobFailure lets a function report a return value together with failure
// (a state run with a failed state returns its results and retcode 2).
type jobFailure struct {
	ret     any
	retcode int
}

func (m *Minion) runJob(ctx context.Context, j *pb.Job) {
	timeout := time.Duration(j.GetTimeoutMs()) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Duration(m.cfg.JobTimeout * float64(time.Second))
	}
	start := time.Now()
	lazy := newDeadlineCtx(context.WithoutCancel(ctx), start.Add(timeout))
	defer lazy.stop()
	var jctx context.Context = lazy
	kwargs := wire.Map(j.GetKwargs())
	kwargs["__jid__"] = j.GetJid()
	var sink exec.RetcodeSink
	jctx = exec.WithRetcodeSink(jctx, &sink)
	ret, err := m.exec.Call(jctx, m.env, j.GetFun(), wire.Args(j.GetArgs()), kwargs)
	r := &pb.Return{Jid: j.GetJid(), Id: m.cfg.ID, Fun: j.GetFun(), DurationMs: time.Since(start).Milliseconds(), Success: true}
	if rc := sink.Retcode(); rc != 0 {
		// Salt's __context__["retcode"]: cmd.run of a failing command
		// returns its output but the job's retcode says it failed.
		r.Retcode = int32(rc)
		r.Success = false
	}
	if f, ok := ret.(jobFailure); ok {
		ret = f.ret
		r.Success = f.retcode == 0
		r.Retcode = int32(f.retcode)
	}
	if err != nil {
		r.Success = false
		r.Retcode = 1
		msg := err.Error()
		if errors.Is(jctx.Err(), context.DeadlineExceeded) {
			msg = fmt.Sprintf("%s: timed out after %s: %v", j.GetFun(), timeout, err)
		}
		r.Error = msg
		ret = msg
	}
	v, verr := wire.Value(ret)
	if verr != nil {
		r.Success, r.Retcode = false, 1
		r.Error = fmt.Sprintf("%s: return value cannot be sent: %v", j.GetFun(), verr)
		v, _ = wire.Value(r.Error)
	}
	r.Ret = v
	m.send(&pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: r}})
}

// deadlineCtx is context.WithDeadline whose timer is only started when
// something asks for Done or Err. Most jobs (test.ping, grains.items) never
// look at their context, and a minion under a fan-out to thousands of
// others would otherwise arm and stop a runtime timer for each of them.
type deadlineCtx struct {
	context.Context
	deadline time.Time
	once     sync.Once
	inner    context.Context
	cancel   context.CancelFunc
}

func newDeadlineCtx(parent context.Context, deadline time.Time) *deadlineCtx {
	return &deadlineCtx{Context: parent, deadline: deadline}
}

func (c *deadlineCtx) arm() {
	c.once.Do(func() { c.inner, c.cancel = context.WithDeadline(c.Context, c.deadline) })
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineCtx) Done() <-chan struct{}       { c.arm(); return c.inner.Done() }
func (c *deadlineCtx) Err() error                  { c.arm(); return c.inner.Err() }

// AfterFunc lets contexts derived from this one (a function's own
// WithTimeout) register with the armed context directly, instead of the
// context package starting a goroutine to watch an unknown parent type.
func (c *deadlineCtx) AfterFunc(f func()) func() bool {
	c.arm()
	return context.AfterFunc(c.inner, f)
}

// stop ends the context as a WithDeadline's cancel does (Err is Canceled
// from here on unless the deadline had already passed).
func (c *deadlineCtx) stop() {
	c.once.Do(func() { c.inner, c.cancel = context.WithCancel(c.Context) })
	c.cancel()
}

// masterCaller is how execution functions reach the master.
type masterCaller struct{ m *Minion }

func (c masterCaller) Call(ctx context.Context, fun string, args []any, kwargs map[string]any) (any, error) {
	m := c.m
	a, err := wire.List(args)
	if err != nil {
		return nil, err
	}
	clean := map[string]any{}
	for k, v := range kwargs {
		if len(k) < 2 || k[:2] != "__" {
			clean[k] = v
		}
	}
	kw, err := wire.Struct(clean)
	if err != nil {
		return nil, err
	}
	id := strconv.FormatUint(m.callSeq.Add(1), 10)
	ch := make(chan *pb.MasterCallReply, 1)
	m.mu.Lock()
	m.calls[id] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.calls, id)
		m.mu.Unlock()
	}()
	if !m.send(&pb.MinionMessage{Msg: &pb.MinionMessage_Call{Call: &pb.MasterCall{CallId: id, Fun: fun, Args: a, Kwargs: kw}}}) {
		return nil, fmt.Errorf("%s: not connected to the master", fun)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: connection to the master lost", fun)
		}
		if r.GetError() != "" {
			return nil, fmt.Errorf("%s: %s", fun, r.GetError())
		}
		return wire.Any(r.GetRet()), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", fun, ctx.Err())
	}
}

func (c masterCaller) SendEvent(ctx context.Context, tag string, data map[string]any) error {
	d, err := wire.Struct(data)
	if err != nil {
		return fmt.Errorf("event %s: %w", tag, err)
	}
	if !c.m.send(&pb.MinionMessage{Msg: &pb.MinionMessage_Event{Event: &pb.Event{Tag: tag, Data: d, TimeUnixNano: time.Now().UnixNano()}}}) {
		return fmt.Errorf("event %s: not connected to the master", tag)
	}
	return nil
}

var _ exec.MasterCaller = masterCaller{}

// SendEvent fires an event on the master's bus over the current stream, as
// event.send does (the load generator drives event ingest through it). It
// fails when disconnected or when the outbound queue is full.
func (m *Minion) SendEvent(ctx context.Context, tag string, data map[string]any) error {
	return masterCaller{m}.SendEvent(ctx, tag, data)
}

func (m *Minion) runForMine(ctx context.Context, fun string, args []any, kwargs map[string]any) (any, error) {
	return m.exec.Call(ctx, m.env, fun, args, kwargs)
}

func (m *Minion) publishMine(ctx context.Context, data map[string]any, removed []string, replace bool) error {
	u := &pb.MineUpdate{Data: map[string]*structpb.Value{}, Removed: removed, Replace: replace}
	for k, v := range data {
		pv, err := wire.Value(v)
		if err != nil {
			return fmt.Errorf("mine %s: %w", k, err)
		}
		u.Data[k] = pv
	}
	if !m.send(&pb.MinionMessage{Msg: &pb.MinionMessage_Mine{Mine: u}}) {
		return errors.New("mine update: not connected to the master")
	}
	return nil
}
