// Package apply is the minion side of state.apply: it runs compiled low
// chunks in the order the master's compiler gave them, evaluates Salt's
// requisites (require, watch, onchanges, onfail, prereq) and failhard, and
// calls the state modules.
//
// Every module separates Check (what would change, touching nothing) from
// Apply (make it so). A real run is Check then, only if Check found
// changes, Apply; test=True is the same Check without the Apply, so what
// test mode predicts is what a real run starts from.
package apply

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/brine-cm/brine/pkg/state"
)

// Module is one state function ("file.managed").
type Module interface {
	// Check inspects the system and returns the changes applying would
	// make; empty Changes means already correct.
	Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error)
	// Apply makes the changes Check planned. A non-nil error fails the
	// chunk; changes already made may still be returned with it.
	Apply(ctx context.Context, env *Env, c state.Chunk, p Plan) (changes map[string]any, comment string, err error)
}

// Watcher is implemented by modules that react to a fired watch (Salt's
// mod_watch: a service restarts or reloads, cmd.run/cmd.wait run). It is
// called only when a watched chunk had changes and the chunk's own run
// changed nothing. In test mode it must only describe what it would do.
// Modules without it just apply as usual, so watch acts like require.
type Watcher interface {
	Watch(ctx context.Context, env *Env, c state.Chunk) (changes map[string]any, comment string, err error)
}

// Plan is what Check found.
type Plan struct {
	Changes map[string]any
	Comment string
	// SkipWatch says a check (cmd's unless/onlyif/creates) decided the
	// state must not run, so a fired watch must not run it either (Salt's
	// skip_watch).
	SkipWatch bool
	// Data is module-private, handed from Check to Apply.
	Data any
}

// Env is what modules may know about the minion they run on.
type Env struct {
	HostsFile string // host.* edit this file; default /etc/hosts
	Test      bool   // test=True: Check only
	Failhard  bool   // failhard for every chunk, as Salt's global option
	Logger    *slog.Logger
	// InitDir holds SysV init scripts for service.*; default /etc/init.d.
	InitDir string
	// SystemdDir decides the service backend: systemctl when it exists;
	// default /run/systemd/system.
	SystemdDir string
	// MongoDial connects mongodb.* states to a server; default dials with
	// the official driver.
	MongoDial MongoDialer
}

func (e *Env) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

// Registry maps "family.function" to its module.
type Registry map[string]Module

// Comments Salt users grep their output for.
const (
	commentNoChanges    = "No changes detected"
	commentOnchangesNot = "State was not run because none of the onchanges reqs changed"
	commentOnfailNot    = "State was not run because onfail req did not change"
)

type done struct {
	res state.Result
	ran bool // false when skipped by onchanges/onfail
}

type runner struct {
	env    *Env
	reg    Registry
	chunks map[string]int // key -> index
	list   []state.Chunk
	done   map[string]*done
	pre    map[string]*done // prereq test runs
	// prereqBy maps a prereq target to the chunks that prereq it: the
	// target implicitly requires them (Salt's prerequired).
	prereqBy map[string][]string
	results  []state.Result
}

// Run applies chunks in the given order and returns one Result per chunk
// in run order, with RunNum set. It never panics on bad input: an unknown
// module, a bad argument or a panicking module fails only its chunk.
func Run(ctx context.Context, env *Env, reg Registry, chunks []state.Chunk) []state.Result {
	if env == nil {
		env = &Env{}
	}
	r := &runner{
		env: env, reg: reg, list: chunks,
		chunks:   map[string]int{},
		done:     map[string]*done{},
		pre:      map[string]*done{},
		prereqBy: map[string][]string{},
	}
	for i, c := range chunks {
		r.chunks[c.Key()] = i
		for _, rq := range c.Requisites {
			if rq.Kind == state.Prereq {
				r.prereqBy[rq.Key] = append(r.prereqBy[rq.Key], c.Key())
			}
		}
	}
	var stop string // why the rest is not run
	for _, c := range chunks {
		if stop == "" && ctx.Err() != nil {
			stop = fmt.Sprintf("State not run: the run was interrupted (%v)", ctx.Err())
		}
		if stop != "" {
			r.record(c, fixed(c, ptr(false), stop), false)
			continue
		}
		d := r.runChunk(ctx, c)
		if d.res.Result != nil && !*d.res.Result && (c.Failhard || env.Failhard) && !env.Test {
			stop = fmt.Sprintf("State not run: failhard is set on %s.%s, which failed", c.SLS, c.ID)
		}
	}
	return r.results
}

func ptr[T any](v T) *T { return &v }

func fixed(c state.Chunk, ok *bool, comment string) state.Result {
	return state.Result{
		ID: c.ID, SLS: c.SLS, Name: c.Name, Function: c.State + "." + c.Fun,
		Result: ok, Changes: map[string]any{}, Comment: comment,
		StartTime: time.Now().Format("15:04:05.000000"),
	}
}

func (r *runner) record(c state.Chunk, res state.Result, ran bool) *done {
	res.RunNum = len(r.results)
	if res.Changes == nil {
		res.Changes = map[string]any{}
	}
	d := &done{res: res, ran: ran}
	r.done[c.Key()] = d
	r.results = append(r.results, res)
	lvl := slog.LevelDebug
	if res.Result != nil && !*res.Result {
		lvl = slog.LevelWarn
	}
	r.env.logger().Log(context.Background(), lvl, "state", "id", c.ID, "function", res.Function, "name", c.Name,
		"result", resultWord(res.Result), "changes", len(res.Changes), "comment", res.Comment)
	return d
}

func resultWord(b *bool) string {
	switch {
	case b == nil:
		return "None"
	case *b:
		return "True"
	}
	return "False"
}

type status int

const (
	stMet status = iota
	stChange
	stOnchanges
	stOnfail
	stPre
	stFail
	stUnmet
)

type reqCheck struct {
	st      status
	failed  []string // sls.id of failed requisites
	missing []string // why a requisite could not be evaluated
}

// check evaluates c's requisites the way Salt's check_requisite does.
// withPrereqBy adds the implicit require on chunks that prereq c; it is
// off while c itself is being test-run for one of them.
func (r *runner) check(ctx context.Context, c state.Chunk, withPrereqBy bool) reqCheck {
	type edge struct{ kind, key string }
	var edges []edge
	for _, rq := range c.Requisites {
		edges = append(edges, edge{rq.Kind, rq.Key})
	}
	if withPrereqBy {
		for _, k := range r.prereqBy[c.Key()] {
			edges = append(edges, edge{state.Require, k})
		}
	}
	stats := map[string]bool{}
	var rc reqCheck
	byKind := map[string]map[string]bool{}
	for _, e := range edges {
		ks := byKind[e.kind]
		if ks == nil {
			ks = map[string]bool{}
			byKind[e.kind] = ks
		}
		var d *done
		if e.kind == state.Prereq {
			d = r.prereqTest(ctx, c, e.key)
		} else {
			d = r.done[e.key]
		}
		if d == nil {
			ks["unmet"] = true
			rc.missing = append(rc.missing, r.whyMissing(c, e.key))
			continue
		}
		res := d.res
		isTrue := res.Result != nil && *res.Result
		isFalse := res.Result != nil && !*res.Result
		if e.kind == state.OnFail {
			if isTrue {
				ks["onfail"] = true
				continue
			}
		} else if isFalse {
			ks["fail"] = true
			rc.failed = append(rc.failed, r.slsID(e.key))
			continue
		}
		switch e.kind {
		case state.OnChanges:
			if len(res.Changes) == 0 {
				ks["onchanges"] = true
			} else {
				ks["onchangesmet"] = true
			}
			continue
		case state.Watch:
			if len(res.Changes) > 0 {
				ks["change"] = true
				continue
			}
		case state.Prereq:
			if res.Result == nil {
				ks["premet"] = true
			} else {
				ks["pre"] = true
			}
			continue
		}
		if d.ran {
			ks["met"] = true
		}
	}
	for kind, ks := range byKind {
		// onfail is "any": one failed target is enough.
		if kind == state.OnFail && ks["onfail"] && ks["met"] {
			delete(ks, "onfail")
		}
		for k := range ks {
			stats[k] = true
		}
	}
	switch {
	case stats["unmet"]:
		rc.st = stUnmet
	case stats["fail"]:
		rc.st = stFail
	case stats["pre"] && !stats["premet"]:
		rc.st = stPre
	case stats["onfail"]:
		rc.st = stOnfail
	case stats["onchanges"] && !stats["onchangesmet"]:
		rc.st = stOnchanges
	case stats["change"]:
		rc.st = stChange
	default:
		rc.st = stMet
	}
	slices.Sort(rc.failed)
	rc.failed = slices.Compact(rc.failed)
	return rc
}

func (r *runner) slsID(key string) string {
	if i, ok := r.chunks[key]; ok {
		return r.list[i].SLS + "." + r.list[i].ID
	}
	return key
}

func (r *runner) whyMissing(c state.Chunk, key string) string {
	i, ok := r.chunks[key]
	if !ok {
		return fmt.Sprintf("requisite %s is not in this run", key)
	}
	if i > r.chunks[c.Key()] {
		return fmt.Sprintf("requisite %s.%s is ordered after %s.%s (the compiler must order requisites first)", r.list[i].SLS, r.list[i].ID, c.SLS, c.ID)
	}
	return fmt.Sprintf("requisite %s.%s was not run", r.list[i].SLS, r.list[i].ID)
}

// prereqTest test-runs the prereq target key on behalf of c, once, and
// returns nil when that cannot be done.
func (r *runner) prereqTest(ctx context.Context, c state.Chunk, key string) *done {
	if d, ok := r.pre[key]; ok {
		return d
	}
	i, ok := r.chunks[key]
	if !ok {
		return nil
	}
	t := r.list[i]
	if _, ran := r.done[key]; ran {
		// The target already ran for real: too late to predict it.
		d := &done{res: fixed(t, ptr(false), fmt.Sprintf("prereq target %s.%s ran before %s.%s; the compiler must order the prereq'ing chunk first", t.SLS, t.ID, c.SLS, c.ID))}
		r.pre[key] = d
		return d
	}
	rc := r.check(ctx, t, false)
	var d *done
	switch rc.st {
	case stUnmet, stFail:
		d = &done{res: fixed(t, ptr(false), "One or more requisite failed: "+strings.Join(append(rc.failed, rc.missing...), ", "))}
	case stOnchanges, stOnfail, stPre:
		d = &done{res: fixed(t, ptr(true), commentNoChanges)}
	default:
		testEnv := *r.env
		testEnv.Test = true
		res := r.call(ctx, &testEnv, t, false)
		d = &done{res: res, ran: true}
	}
	r.pre[key] = d
	return d
}

func (r *runner) runChunk(ctx context.Context, c state.Chunk) *done {
	rc := r.check(ctx, c, true)
	switch rc.st {
	case stUnmet:
		return r.record(c, fixed(c, ptr(false), "Requisite not met: "+strings.Join(rc.missing, "; ")), true)
	case stFail:
		if d, ok := r.pre[c.Key()]; ok && d.res.Result != nil && !*d.res.Result {
			// The failure was this chunk's own prereq test run.
			return r.record(c, d.res, true)
		}
		return r.record(c, fixed(c, ptr(false), "One or more requisite failed: "+strings.Join(rc.failed, ", ")), true)
	case stPre:
		return r.record(c, fixed(c, ptr(true), commentNoChanges), true)
	case stOnfail:
		return r.record(c, fixed(c, ptr(true), commentOnfailNot), false)
	case stOnchanges:
		return r.record(c, fixed(c, ptr(true), commentOnchangesNot), false)
	case stChange:
		return r.record(c, r.call(ctx, r.env, c, true), true)
	}
	return r.record(c, r.call(ctx, r.env, c, false), true)
}

// call runs one module: Check, then Apply when not testing and Check found
// changes; with watchFired, the module's Watch when the run changed
// nothing.
func (r *runner) call(ctx context.Context, env *Env, c state.Chunk, watchFired bool) (res state.Result) {
	start := time.Now()
	res = fixed(c, nil, "")
	res.StartTime = start.Format("15:04:05.000000")
	defer func() {
		if p := recover(); p != nil {
			res.Result, res.Comment = ptr(false), fmt.Sprintf("module %s panicked: %v", res.Function, p)
		}
		res.Duration = float64(time.Since(start).Microseconds()) / 1000
		if res.Changes == nil {
			res.Changes = map[string]any{}
		}
	}()
	mod, ok := r.reg[res.Function]
	if !ok {
		res.Result = ptr(false)
		res.Comment = fmt.Sprintf("State '%s' was not found in SLS '%s': this minion has no such state module", res.Function, c.SLS)
		return res
	}
	plan, err := mod.Check(ctx, env, c)
	if err != nil {
		res.Result, res.Comment = ptr(false), err.Error()
		return res
	}
	res.Comment = plan.Comment
	if len(plan.Changes) > 0 {
		res.Changes = plan.Changes
		if env.Test {
			return res // Result nil: would change
		}
		ch, comment, err := mod.Apply(ctx, env, c, plan)
		res.Changes, res.Comment = ch, comment
		if err != nil {
			res.Result = ptr(false)
			if comment == "" {
				res.Comment = err.Error()
			} else {
				res.Comment = comment + ": " + err.Error()
			}
			return res
		}
		res.Result = ptr(true)
		return res
	}
	res.Result = ptr(true)
	w, isWatcher := mod.(Watcher)
	if !watchFired || plan.SkipWatch || !isWatcher {
		return res
	}
	ch, comment, err := w.Watch(ctx, env, c)
	res.Changes, res.Comment = ch, comment
	switch {
	case err != nil:
		res.Result = ptr(false)
		if comment == "" {
			res.Comment = err.Error()
		} else {
			res.Comment = comment + ": " + err.Error()
		}
	case env.Test:
		res.Result = nil
	}
	return res
}
