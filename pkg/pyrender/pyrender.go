// Package pyrender is Salt's `#!py` renderer on Starlark (go.starlark.net),
// the Python dialect with a Go interpreter. A #!py file defines run(),
// which returns a dict: high data for states and pillar, reactions for
// reactor files. The file runs in Starlark with the dialect options
// Python code needs, Salt's dunder globals, and Go implementations of the
// Python modules such files import (hashlib, hmac, json, base64, re,
// os.path, time). Python constructs Starlark lacks are refused with file,
// line and construct before anything runs.
//
// The sandbox is Starlark's: a file can reach nothing outside itself but
// the __salt__ functions it is given; each run has a step limit and a
// wall-clock limit.
package pyrender

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Defaults for Limits. A deploy reactor takes a few thousand steps; ten
// million is seconds of pure computation on a slow machine.
const (
	DefaultMaxSteps = 10_000_000
	DefaultTimeout  = 10 * time.Second
)

// Limits bound one run of a file; zero fields take the defaults.
type Limits struct {
	MaxSteps uint64        // Starlark execution steps
	Timeout  time.Duration // wall clock, including time in __salt__ calls
}

func (l Limits) withDefaults() Limits {
	if l.MaxSteps == 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	return l
}

// Globals are the names Salt gives a #!py file. Each dunder name also has
// its plain alias (__salt__ and salt, __grains__ and grains, ...).
type Globals struct {
	// Salt is __salt__: function name -> jinja.Func (the same dictionary
	// templates get as salt).
	Salt    map[string]any
	Grains  map[string]any
	Pillar  map[string]any
	Opts    map[string]any // __opts__
	Saltenv string         // __env__, saltenv
	SLS     string         // __sls__, sls
	// Reactor files also get the event.
	Reactor bool
	Tag     string
	Data    map[string]any
	// Log receives print() output; nil discards it.
	Log *slog.Logger
}

var fileOptions = &syntax.FileOptions{
	Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true,
}

var predeclaredNames = map[string]bool{
	"__salt__": true, "salt": true, "__grains__": true, "grains": true, "__pillar__": true, "pillar": true,
	"__opts__": true, "opts": true, "__env__": true, "saltenv": true, "env": true, "__sls__": true, "sls": true,
	"tag": true, "data": true, "__import__": true,
	// Python built-ins Starlark lacks that Salt #!py files commonly use.
	"isinstance": true, "xrange": true, "unicode": true, "long": true, "basestring": true,
}

// Program is a compiled #!py file; one Program may run concurrently.
type Program struct {
	file string
	prog *starlark.Program
}

// Compile checks and compiles a #!py file. The `#!py` line itself is a
// Python comment and may stay.
func Compile(file string, src []byte) (*Program, error) {
	text, err := preprocess(file, string(src))
	if err != nil {
		return nil, err
	}
	_, prog, err := starlark.SourceProgramOptions(fileOptions, file, text, func(name string) bool {
		return predeclaredNames[name]
	})
	if err != nil {
		return nil, compileError(file, err)
	}
	return &Program{file: file, prog: prog}, nil
}

func compileError(file string, err error) error {
	var se syntax.Error
	if errors.As(err, &se) {
		return &SourceError{File: file, Line: int(se.Pos.Line), Construct: "syntax", Msg: se.Msg}
	}
	var rl resolve.ErrorList
	if errors.As(err, &rl) && len(rl) > 0 {
		return &SourceError{File: file, Line: int(rl[0].Pos.Line), Construct: "name", Msg: rl[0].Msg}
	}
	return fmt.Errorf("%s: %w", file, err)
}

// Run compiles and runs a #!py file and returns what run() returned.
func Run(ctx context.Context, file string, src []byte, g Globals, lim Limits) (*Dict, error) {
	p, err := Compile(file, src)
	if err != nil {
		return nil, err
	}
	return p.Run(ctx, g, lim)
}

// Run executes the file's top level, then calls run(), which must return
// a dict.
func (p *Program) Run(ctx context.Context, g Globals, lim Limits) (*Dict, error) {
	lim = lim.withDefaults()
	pre, err := g.predeclared()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.file, err)
	}
	thread := &starlark.Thread{
		Name: p.file,
		Print: func(_ *starlark.Thread, msg string) {
			if g.Log != nil {
				g.Log.Info("#!py print", "file", p.file, "msg", msg)
			}
		},
		Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			return nil, fmt.Errorf("load(%q): #!py files cannot load other files", module)
		},
	}
	thread.SetMaxExecutionSteps(lim.MaxSteps)
	var timedOut atomic.Bool
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(lim.Timeout)
		defer t.Stop()
		select {
		case <-t.C:
			timedOut.Store(true)
			thread.Cancel("wall-clock limit")
		case <-ctx.Done():
			thread.Cancel(ctx.Err().Error())
		case <-done:
		}
	}()
	defer func() {
		close(done)
		wg.Wait()
	}()

	fail := func(err error, where string) error {
		switch {
		case timedOut.Load():
			return &SourceError{File: p.file, Line: errLine(p.file, err), Construct: "time limit",
				Msg: fmt.Sprintf("still running after %s (an endless loop or a slow __salt__ call?)", lim.Timeout)}
		case thread.ExecutionSteps() >= lim.MaxSteps:
			return &SourceError{File: p.file, Line: errLine(p.file, err), Construct: "step limit",
				Msg: fmt.Sprintf("more than %d steps (an endless loop?)", lim.MaxSteps)}
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w", p.file, ctx.Err())
		}
		return &runError{SourceError: SourceError{File: p.file, Line: errLine(p.file, err), Construct: where, Msg: errMsg(err)}, err: err}
	}

	globals, err := p.prog.Init(thread, pre)
	if err != nil {
		return nil, fail(err, "top level")
	}
	fn, ok := globals["run"]
	if !ok {
		return nil, &SourceError{File: p.file, Construct: "run()", Msg: "a #!py file must define run()"}
	}
	if _, ok := fn.(starlark.Callable); !ok {
		return nil, &SourceError{File: p.file, Construct: "run()", Msg: fmt.Sprintf("run is a %s, not a function", fn.Type())}
	}
	res, err := starlark.Call(thread, fn, nil, nil)
	if err != nil {
		return nil, fail(err, "run()")
	}
	line := 0
	if f, ok := fn.(*starlark.Function); ok {
		line = int(f.Position().Line)
	}
	if res == starlark.None {
		// Salt treats a run() that returns nothing as no data.
		return &Dict{Vals: map[string]any{}}, nil
	}
	d, ok := res.(*starlark.Dict)
	if !ok {
		return nil, &SourceError{File: p.file, Line: line, Construct: "run()", Msg: fmt.Sprintf("must return a dict, returned a %s", res.Type())}
	}
	out, err := fromStarlark(d, 0)
	if err != nil {
		return nil, &SourceError{File: p.file, Line: line, Construct: "run()", Msg: "returned data: " + err.Error()}
	}
	return out.(*Dict), nil
}

// runError keeps Starlark's error (and its backtrace) for errors.As.
type runError struct {
	SourceError
	err error
}

func (e *runError) Unwrap() error { return e.err }

// errLine is the innermost line of the file in an evaluation error.
func errLine(file string, err error) int {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return 0
	}
	for i := 0; i < len(ee.CallStack); i++ {
		fr := ee.CallStack.At(i)
		if fr.Pos.Filename() == file {
			return int(fr.Pos.Line)
		}
	}
	return 0
}

func errMsg(err error) string {
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		return ee.Msg
	}
	return err.Error()
}

func (g Globals) predeclared() (starlark.StringDict, error) {
	salt, err := saltDict(g.Salt)
	if err != nil {
		return nil, err
	}
	conv := func(name string, m map[string]any) (starlark.Value, error) {
		if m == nil {
			m = map[string]any{}
		}
		v, err := toStarlark(m, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return v, nil
	}
	grains, err := conv("__grains__", g.Grains)
	if err != nil {
		return nil, err
	}
	pillar, err := conv("__pillar__", g.Pillar)
	if err != nil {
		return nil, err
	}
	opts, err := conv("__opts__", g.Opts)
	if err != nil {
		return nil, err
	}
	env, sls := starlark.String(g.Saltenv), starlark.String(g.SLS)
	d := starlark.StringDict{
		"__salt__": salt, "salt": salt,
		"__grains__": grains, "grains": grains,
		"__pillar__": pillar, "pillar": pillar,
		"__opts__": opts, "opts": opts,
		"__env__": env, "saltenv": env, "env": env,
		"__sls__": sls, "sls": sls,
		"__import__": importBuiltin,
	}
	for k, v := range pyBuiltins {
		d[k] = v
	}
	if g.Reactor {
		data, err := conv("data", g.Data)
		if err != nil {
			return nil, err
		}
		d["tag"], d["data"] = starlark.String(g.Tag), data
	}
	return d, nil
}

// Cache keeps compiled programs by content, so a reactor file is parsed
// once however many events it handles. Safe for concurrent use.
type Cache struct {
	mu    sync.Mutex
	progs map[[32]byte]*Program
}

const maxCached = 256

// Compile returns the cached program for this exact file and content.
func (c *Cache) Compile(file string, src []byte) (*Program, error) {
	h := sha256.New()
	h.Write([]byte(file))
	h.Write([]byte{0})
	h.Write(src)
	var key [32]byte
	copy(key[:], h.Sum(nil))
	c.mu.Lock()
	p, ok := c.progs[key]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := Compile(file, src)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.progs == nil || len(c.progs) >= maxCached {
		c.progs = map[[32]byte]*Program{} // edited files leave stale entries; start over
	}
	c.progs[key] = p
	c.mu.Unlock()
	return p, nil
}

// IsPy reports whether a file's first line selects this renderer
// (`#!py`, as Salt writes it).
func IsPy(src []byte) bool {
	line, _, _ := strings.Cut(string(src), "\n")
	return strings.ReplaceAll(strings.TrimSpace(strings.TrimPrefix(line, "#!")), " ", "") == "py" && strings.HasPrefix(line, "#!")
}
