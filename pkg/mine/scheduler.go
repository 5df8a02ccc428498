package mine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"
)

// DefaultInterval is Salt's mine_interval (60 minutes).
const DefaultInterval = 60 * time.Minute

// DefaultChangePoll is how often the host's addresses and hostname are
// compared when no netlink event arrives first.
const DefaultChangePoll = 2 * time.Second

// Runner calls one of the minion's execution functions.
type Runner func(ctx context.Context, fun string, args []any, kwargs map[string]any) (any, error)

// Publisher sends one MineUpdate to the master. data values are already
// Encode'd and JSON-shaped, ready for structpb.
type Publisher func(ctx context.Context, data map[string]any, removed []string, replace bool) error

// Scheduler is the minion's side of the mine: it runs the configured
// functions and publishes their values, remembering what the master was
// last sent so that change-triggered updates carry only what changed.
type Scheduler struct {
	// ChangePoll is the host-change poll period (default DefaultChangePoll);
	// negative turns change detection off. Set before Run.
	ChangePoll time.Duration
	// NoNetlink skips the netlink subscription and relies on polling alone.
	NoNetlink bool

	run      Runner
	pub      Publisher
	interval time.Duration
	log      *slog.Logger

	specMu sync.Mutex
	specs  []FuncSpec
	kick   chan struct{}

	pubMu sync.Mutex     // one update in flight; guards last
	last  map[string]any // name -> Encode'd value the master holds
}

// NewScheduler returns a scheduler for specs. interval is mine_interval
// (0 = DefaultInterval); log may be nil.
func NewScheduler(specs []FuncSpec, run Runner, pub Publisher, interval time.Duration, log *slog.Logger) *Scheduler {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.Default()
	}
	return &Scheduler{
		run:      run,
		pub:      pub,
		interval: interval,
		log:      log.With("component", "mine"),
		specs:    append([]FuncSpec(nil), specs...),
		kick:     make(chan struct{}, 1),
		last:     map[string]any{},
	}
}

// SetSpecs replaces mine_functions (pushed by the master or reloaded) and
// asks a running Run loop for a refresh, which also removes functions
// that are gone.
func (s *Scheduler) SetSpecs(specs []FuncSpec) {
	s.specMu.Lock()
	s.specs = append([]FuncSpec(nil), specs...)
	s.specMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Scheduler) currentSpecs() []FuncSpec {
	s.specMu.Lock()
	defer s.specMu.Unlock()
	return append([]FuncSpec(nil), s.specs...)
}

// Run refreshes fully at start, then every interval, on SetSpecs, and at
// once when the host's addresses or hostname change. It returns when ctx
// ends. Publish failures are logged, not fatal: the minion daemon calls
// Refresh(ctx, true) after it reconnects.
func (s *Scheduler) Run(ctx context.Context) error {
	changes := make(chan struct{}, 1)
	if s.ChangePoll >= 0 {
		w := newHostWatcher(s.ChangePoll, !s.NoNetlink, s.log)
		w.start(ctx, changes)
	}
	if err := s.Refresh(ctx, true); err != nil && ctx.Err() == nil {
		s.log.Warn("mine: initial refresh", "err", err)
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			err = s.Refresh(ctx, false)
		case <-s.kick:
			err = s.Refresh(ctx, false)
		case <-changes:
			err = s.publishChanged(ctx)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("mine: update", "err", err)
		}
	}
}

// Refresh is mine.update: run every function and send all values, with
// the functions no longer configured listed as removed. full=true sends
// replace instead, so the master drops anything it holds beyond these;
// the minion daemon calls it after every (re)connect. Function errors are
// returned joined; the other values are still sent.
func (s *Scheduler) Refresh(ctx context.Context, full bool) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	specs := s.currentSpecs()
	data, runErr := s.runAll(ctx, specs)
	var removed []string
	if !full {
		want := map[string]bool{}
		for _, sp := range specs {
			want[sp.Name] = true
		}
		for name := range s.last {
			if !want[name] {
				removed = append(removed, name)
			}
		}
		sort.Strings(removed)
	}
	if err := s.pub(ctx, data, removed, full); err != nil {
		return errors.Join(fmt.Errorf("mine: publish: %w", err), runErr)
	}
	if full {
		s.last = map[string]any{}
	}
	for _, name := range removed {
		delete(s.last, name)
	}
	for name, v := range data {
		s.last[name] = v
	}
	return runErr
}

// Send is mine.send NAME: run that one function and publish it. A name
// not in mine_functions is run as a function without arguments, as Salt
// does.
func (s *Scheduler) Send(ctx context.Context, name string) error {
	for _, sp := range s.currentSpecs() {
		if sp.Name == name {
			return s.SendSpec(ctx, sp)
		}
	}
	if !funcNameRE.MatchString(name) {
		return fmt.Errorf("mine.send: %q is neither in mine_functions nor a module.function name", name)
	}
	return s.SendSpec(ctx, FuncSpec{Name: name, Function: name})
}

// SendSpec is mine.send with explicit arguments (mine.send name
// mine_function=... args...).
func (s *Scheduler) SendSpec(ctx context.Context, sp FuncSpec) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	data, err := s.runAll(ctx, []FuncSpec{sp})
	if err != nil {
		return fmt.Errorf("mine.send: %w", err)
	}
	if err := s.pub(ctx, data, nil, false); err != nil {
		return fmt.Errorf("mine.send %s: publish: %w", sp.Name, err)
	}
	for name, v := range data {
		s.last[name] = v
	}
	return nil
}

// publishChanged re-runs every function after a host change and sends
// only the values that differ from what the master holds.
func (s *Scheduler) publishChanged(ctx context.Context) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	data, runErr := s.runAll(ctx, s.currentSpecs())
	for name, v := range data {
		if old, ok := s.last[name]; ok && reflect.DeepEqual(old, v) {
			delete(data, name)
		}
	}
	if len(data) == 0 {
		return runErr
	}
	names := make([]string, 0, len(data))
	for n := range data {
		names = append(names, n)
	}
	sort.Strings(names)
	s.log.Info("mine: host changed, publishing changed functions", "functions", names)
	if err := s.pub(ctx, data, nil, false); err != nil {
		return errors.Join(fmt.Errorf("mine: publish: %w", err), runErr)
	}
	for name, v := range data {
		s.last[name] = v
	}
	return runErr
}

// runAll runs specs and returns their Encode'd, normalized values. A
// function that fails is left out and its error collected, as Salt's
// mine.update logs and skips it.
func (s *Scheduler) runAll(ctx context.Context, specs []FuncSpec) (map[string]any, error) {
	data := make(map[string]any, len(specs))
	var errs []error
	for _, sp := range specs {
		v, err := s.run(ctx, sp.Function, sp.Args, sp.Kwargs)
		if err == nil {
			v, err = normalize(v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mine function %s (%s): %w", sp.Name, sp.Function, err))
			continue
		}
		data[sp.Name] = Encode(v, sp.AllowTgt, sp.AllowTgtType)
	}
	return data, errors.Join(errs...)
}
