// Package exec holds the execution functions a minion runs for a job
// (Salt's execution modules: test.*, cmd.*, grains.*, network.*, ...), a
// registry to look them up by name, and the Salt-style binding of
// positional and keyword arguments to declared parameters.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
)

// Env is what an execution function may use of the minion running it.
type Env struct {
	ID     string
	Grains func() map[string]any // nil means no grains
	Master MasterCaller          // nil when not connected (and in tests)
	Logger *slog.Logger          // nil means discard
	// Extra carries values for functions the minion registers itself
	// (state.apply, mine.update) so they need not import the minion.
	// Built-in functions never read it.
	Extra map[string]any
}

// MasterCaller is how a function reaches the master over the minion link.
type MasterCaller interface {
	// Call runs a master-side function such as mine.get.
	Call(ctx context.Context, fun string, args []any, kwargs map[string]any) (any, error)
	// SendEvent fires an event onto the master's bus.
	SendEvent(ctx context.Context, tag string, data map[string]any) error
}

// Func is one execution function. args and kwargs are JSON-shaped values
// (numbers may be float64 after crossing the wire).
type Func func(ctx context.Context, env *Env, args []any, kwargs map[string]any) (any, error)

// Errors a caller can test for with errors.Is.
var (
	ErrUnknownFunction = errors.New("unknown function")
	ErrBadArgs         = errors.New("bad arguments")
)

// CallError describes a call that could not start: an unknown function
// or arguments that do not fit its parameters. It unwraps to
// ErrUnknownFunction or ErrBadArgs.
type CallError struct {
	Fun  string
	Arg  string // the offending argument, "" when not about one
	Kind error  // ErrUnknownFunction or ErrBadArgs
	Msg  string
}

func (e *CallError) Error() string {
	if e.Kind == ErrUnknownFunction {
		// Salt's own wording, which users grep for.
		return fmt.Sprintf("'%s' is not available", e.Fun)
	}
	if e.Arg != "" {
		return fmt.Sprintf("%s: argument '%s': %s", e.Fun, e.Arg, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Fun, e.Msg)
}

func (e *CallError) Unwrap() error { return e.Kind }

func badArg(fun, arg, format string, a ...any) error {
	return &CallError{Fun: fun, Arg: arg, Kind: ErrBadArgs, Msg: fmt.Sprintf(format, a...)}
}

// Registry maps function names ("cmd.run") to implementations.
type Registry struct {
	mu    sync.RWMutex
	funcs map[string]entry
}

type entry struct {
	f   Func
	doc Doc
}

// NewRegistry returns a registry holding every built-in function.
func NewRegistry() *Registry {
	r := &Registry{funcs: map[string]entry{}}
	registerTest(r)
	registerCmd(r)
	registerGrains(r)
	registerNetwork(r)
	registerEvent(r)
	registerMine(r)
	registerSys(r)
	return r
}

// Register adds or replaces a function. Replacing lets the minion
// substitute its own implementation of a name.
func (r *Registry) Register(name string, f Func, doc Doc) {
	if name == "" || f == nil {
		panic("exec: Register needs a name and a function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.funcs[name] = entry{f: f, doc: doc}
}

// RegisterBound registers fn with its arguments bound against doc: fn
// receives typed values and never sees arguments the doc does not declare.
func (r *Registry) RegisterBound(name string, doc Doc, fn BoundFunc) {
	r.Register(name, Bind(name, doc, fn), doc)
}

// Call runs the named function. A panic inside it becomes an error so a
// bad function cannot take the minion down.
func (r *Registry) Call(ctx context.Context, env *Env, name string, args []any, kwargs map[string]any) (ret any, err error) {
	r.mu.RLock()
	e, ok := r.funcs[name]
	r.mu.RUnlock()
	if !ok {
		return nil, &CallError{Fun: name, Kind: ErrUnknownFunction}
	}
	if env == nil {
		env = &Env{}
	}
	defer func() {
		if p := recover(); p != nil {
			env.logger().Error("execution function panicked", "fun", name, "panic", p, "stack", string(debug.Stack()))
			ret, err = nil, fmt.Errorf("%s: internal error: %v", name, p)
		}
	}()
	return e.f(ctx, env, args, kwargs)
}

// Names lists registered functions, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.funcs))
	for n := range r.funcs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Doc returns the documentation of a registered function.
func (r *Registry) Doc(name string) (Doc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.funcs[name]
	return e.doc, ok
}

func (e *Env) logger() *slog.Logger {
	if e == nil || e.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return e.Logger
}

func (e *Env) grains() map[string]any {
	if e == nil || e.Grains == nil {
		return map[string]any{}
	}
	if g := e.Grains(); g != nil {
		return g
	}
	return map[string]any{}
}

// RetcodeSink receives the job retcode a function reports besides its
// return value (Salt's __context__["retcode"]): cmd.run of a failing
// command returns its output and sets the retcode to the command's.
type RetcodeSink struct{ v atomic.Int64 }

// Retcode is the last code set, 0 when none was.
func (s *RetcodeSink) Retcode() int { return int(s.v.Load()) }

type retcodeKey struct{}

// WithRetcodeSink returns a context whose functions report their retcode
// into s.
func WithRetcodeSink(ctx context.Context, s *RetcodeSink) context.Context {
	return context.WithValue(ctx, retcodeKey{}, s)
}

// SetRetcode reports a retcode for the running job; without a sink in ctx
// it does nothing.
func SetRetcode(ctx context.Context, code int) {
	if s, ok := ctx.Value(retcodeKey{}).(*RetcodeSink); ok {
		s.v.Store(int64(code))
	}
}
