// Package jinja renders templates the way Salt's Jinja environment does,
// on top of gonja: StrictUndefined, the do extension, Salt's json/yaml
// filters, Python-like mutable lists and dicts, and errors that name the
// template, line and column.
package jinja

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/brine-cm/brine/internal/gonja/builtins"
	controlStructures "github.com/brine-cm/brine/internal/gonja/builtins/control_structures"
	"github.com/brine-cm/brine/internal/gonja/config"
	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/internal/gonja/loaders"
	"github.com/brine-cm/brine/internal/gonja/logging"
	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/parser"
	"github.com/brine-cm/brine/internal/gonja/tokens"
)

// Func is a Go function callable from templates with Python-style
// positional and keyword arguments, e.g. salt['mine.get'](tgt, fun,
// tgt_type='grain'). Arguments arrive as plain Go data (map[string]any,
// []any, string, int, float64, bool, nil); the result may be any such data.
type Func func(args []any, kwargs map[string]any) (any, error)

// namespace backs Jinja's namespace(): a map, because gonja's
// `{% set ns.x = ... %}` can only assign into maps and struct fields.
type namespace map[string]any

func init() {
	// gonja logs through logrus at error level for every type it cannot
	// stringify; those are not errors of ours.
	logging.SetEnabled(false)
}

var environment = newEnvironment()

func newEnvironment() *exec.Environment {
	filters := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
	for name, f := range mergeFilters(jinja2Filters, saltFilters) {
		if filters.Exists(name) {
			_ = filters.Replace(name, f)
		} else {
			_ = filters.Register(name, f)
		}
	}

	tests := exec.NewTestSet(map[string]exec.TestFunction{}).Update(builtins.Tests)
	for name, f := range map[string]exec.TestFunction{
		"escaped": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.Safe, nil },
		// Salt's match test: re.match, anchored at the start only.
		"match": func(_ *exec.Context, in *exec.Value, p *exec.VarArgs) (bool, error) {
			if len(p.Args) != 1 {
				return false, errors.New("match test takes a pattern")
			}
			pat := p.Args[0].String()
			if p.GetKeywordArgument("multiline", false).IsTrue() {
				pat = "(?m)" + pat
			}
			re, err := compileRegex(`\A(?:`+pat+`)`, p.GetKeywordArgument("ignorecase", false).IsTrue())
			if err != nil {
				return false, err
			}
			return re.MatchString(pyStr(in)), nil
		},
		"filter": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return filters.Exists(in.String()), nil
		},
	} {
		if tests.Exists(name) {
			_ = tests.Replace(name, f)
		} else {
			_ = tests.Register(name, f)
		}
	}
	isTest := func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
		return tests.Exists(in.String()), nil
	}
	if tests.Exists("test") {
		_ = tests.Replace("test", isTest)
	} else {
		_ = tests.Register("test", isTest)
	}
	structures := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{}).Update(builtins.ControlStructures)
	wrapped := map[string]parser.ControlStructureParser{}
	for _, name := range []string{"autoescape", "block", "filter", "for", "if", "macro", "raw", "set", "with", "do", "break", "continue", "call", "include", "import", "from", "extends"} {
		if p, ok := structures.Get(name); ok {
			wrapped[name] = positionedParser(name, p)
		}
	}
	wrapped["from"] = positionedParser("from", parseFromImport)
	wrapped["import"] = positionedParser("import", parseImportAs("jinja"))
	wrapped["include"] = positionedParser("include", parseInclude)
	for name, p := range wrapped {
		_ = structures.Replace(name, p)
	}
	for _, kind := range []string{"yaml", "json", "text"} {
		_ = structures.Register("load_"+kind, positionedParser("load_"+kind, parseLoadBlock(kind)))
		_ = structures.Register("import_"+kind, positionedParser("import_"+kind, parseImportAs(kind)))
	}

	globals := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(exec.NewContext(map[string]any{
		"namespace": namespaceFunc,
		"dict":      dictFunc,
		"raise":     raiseFunc,
		"range":     rangeFunc,
	}))

	return &exec.Environment{
		Context:           globals,
		Filters:           filters,
		Tests:             tests,
		ControlStructures: structures,
		Methods: exec.Methods{
			Bool:  builtins.Methods.Bool,
			Int:   builtins.Methods.Int,
			Float: builtins.Methods.Float,
			Str:   strMethods(),
			Dict:  dictMethods,
			List:  listMethods,
		},
		Hooks: pyHooks{},
	}
}

func newConfig() *config.Config {
	cfg := config.New()
	// Salt renders SLS with StrictUndefined: a typo in a pillar key is an
	// error, not an empty string.
	cfg.StrictUndefined = true
	cfg.KeepTrailingNewline = false
	return cfg
}

// maxSource bounds what a template may be; SLS files are small.
const maxSource = 4 << 20

// Render renders source as a Jinja template. name is only used in error
// messages (an SLS path, say). vars are the top-level variables; Func
// values (also nested in maps, as in vars["salt"]["mine.get"]) are callable.
func Render(name, source string, vars map[string]any) (string, error) {
	return RenderWith(name, source, vars, nil)
}

// Loader returns the source of a template named in {% include %},
// {% import %} or {% from ... import %}.
type Loader func(name string) (string, error)

// RenderWith is Render with a Loader for include/import. The Loader gets
// names as written in the template.
func RenderWith(name, source string, vars map[string]any, load Loader) (string, error) {
	var res Resolver
	if load != nil {
		res = func(_, n string) (string, string, error) {
			src, err := load(n)
			return n, src, err
		}
	}
	return RenderOptions(name, source, vars, Options{Resolve: res})
}

// RenderOptions renders source, named name, with vars as both the context
// and the globals (as Salt does), under opts.
func RenderOptions(name, source string, vars map[string]any, opts Options) (out string, err error) {
	if len(source) > maxSource {
		return "", fmt.Errorf("template %s: %d bytes is larger than the %d byte limit", name, len(source), maxSource)
	}
	defer func() {
		// gonja is not hardened against every input; a panic in it must
		// not take the master down.
		if r := recover(); r != nil {
			out, err = "", &Error{Template: name, Message: fmt.Sprintf("internal template engine error: %v", r)}
		}
	}()

	if line, col, ch, bad := badTagChar(source); bad {
		return "", newError(name, source, line, col, fmt.Sprintf("template syntax error: unexpected character %q in a tag", ch), nil)
	}
	cfg := newConfig()
	cfg.TrimBlocks = opts.TrimBlocks
	cfg.LeftStripBlocks = opts.LstripBlocks
	ld := &loader{from: name, shared: &loaderShared{root: name, source: source, resolve: opts.Resolve, sources: map[string]string{}, modules: map[string]any{}}}
	// Salt puts the context in the environment's globals too: a template
	// imported without context still sees grains, pillar and salt.
	globals := environment.Context.Inherit()
	for k, v := range vars {
		globals.Set(k, copyIn(k, v))
	}
	env := *environment
	env.Context = globals
	env.Globals = globals
	tpl, err := exec.NewTemplate(name, cfg, ld, &env)
	if err != nil {
		return "", parseError(name, source, err)
	}

	var buf bytes.Buffer
	if err := tpl.Execute(&buf, exec.EmptyContext()); err != nil {
		return "", runtimeError(name, source, tpl.Root(), err)
	}
	out = buf.String()
	// Salt re-adds the trailing newline Jinja drops (salt.utils.templates).
	if strings.HasSuffix(source, "\n") {
		out += "\n"
	}
	return out, nil
}

// copyIn deep-copies caller data into the template model so that a
// template mutating pillar does not mutate the caller's map.
func copyIn(name string, v any) any {
	if f, ok := v.(Func); ok {
		return wrapFunc(name, f)
	}
	if m, ok := v.(ordered); ok {
		d := &exec.Dict{}
		for _, k := range m.Keys() {
			item, _ := m.Get(k)
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(copyIn(k, item))})
		}
		return d
	}
	if l, ok := v.([]any); ok {
		out := make(List, len(l))
		for i, item := range l {
			out[i] = copyIn(name, item)
		}
		return &out
	}
	if m, ok := v.(map[string]any); ok {
		d := &exec.Dict{}
		for _, k := range sortedKeys(m) {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(copyIn(k, m[k]))})
		}
		return d
	}
	return toModel(fromModel(v))
}

// wrapFunc adapts a Func to the calling convention gonja recognises:
// func(*exec.VarArgs) (*exec.Value, error).
func wrapFunc(name string, f Func) func(*exec.VarArgs) (*exec.Value, error) {
	return func(va *exec.VarArgs) (*exec.Value, error) {
		args := make([]any, len(va.Args))
		for i, a := range va.Args {
			args[i] = fromModel(a)
		}
		kwargs := make(map[string]any, len(va.KwArgs))
		for k, v := range va.KwArgs {
			kwargs[k] = fromModel(v)
		}
		res, err := f(args, kwargs)
		if err != nil {
			return nil, &callError{fn: name, err: err}
		}
		return exec.AsValue(toModel(res)), nil
	}
}

type callError struct {
	fn  string
	err error
}

func (e *callError) Error() string { return fmt.Sprintf("%s: %v", e.fn, e.err) }
func (e *callError) Unwrap() error { return e.err }

func namespaceFunc(va *exec.VarArgs) *exec.Value {
	ns := namespace{}
	for _, p := range dictPairs(firstOr(va)) {
		ns[p.Key.String()] = toModel(p.Value)
	}
	for _, k := range va.KwNames() {
		ns[k] = toModel(va.KwArgs[k])
	}
	return exec.AsValue(ns)
}

func firstOr(va *exec.VarArgs) *exec.Value {
	if len(va.Args) > 0 {
		return va.Args[0]
	}
	return exec.AsValue(nil)
}

// dictFunc is Python's dict(): gonja's builds its keys in Go map order.
func dictFunc(va *exec.VarArgs) *exec.Value {
	d := &exec.Dict{}
	for _, p := range dictPairs(firstOr(va)) {
		d.Pairs = append(d.Pairs, &exec.Pair{Key: p.Key, Value: exec.AsValue(toModel(p.Value))})
	}
	for _, k := range va.KwNames() {
		_ = dictSet(exec.AsValue(d), exec.AsValue(k), toModel(va.KwArgs[k]))
	}
	return exec.AsValue(d)
}

// raiseFunc is Salt's raise('message') global for failing a render on
// purpose.
func raiseFunc(va *exec.VarArgs) (*exec.Value, error) {
	return nil, &raised{msg: firstOr(va).String()}
}

type raised struct{ msg string }

func (r *raised) Error() string { return r.msg }

// loader serves the template itself under its own name and asks the
// caller's Resolver for any other, on behalf of the template `from`.
type loader struct {
	from   string
	shared *loaderShared
}

type loaderShared struct {
	root, source string
	resolve      Resolver
	sources      map[string]string // canonical name -> source
	modules      map[string]any    // imports without context, rendered once
}

func (l *loader) Read(name string) (io.Reader, error) {
	if name == l.shared.root {
		return strings.NewReader(l.shared.source), nil
	}
	if src, ok := l.shared.sources[name]; ok {
		return strings.NewReader(src), nil
	}
	canon, err := l.Resolve(name)
	if err != nil {
		return nil, err
	}
	return strings.NewReader(l.shared.sources[canon]), nil
}

// Resolve loads name as imported by l.from and returns its canonical name.
func (l *loader) Resolve(name string) (string, error) {
	if name == l.shared.root {
		return name, nil
	}
	if l.shared.resolve == nil {
		return "", fmt.Errorf("cannot load %q: include/import is not available here", name)
	}
	canon, src, err := l.shared.resolve(l.from, name)
	if err != nil {
		if rel := RelativeName(l.from, name); rel != name && !strings.Contains(err.Error(), rel) {
			return "", fmt.Errorf("%s: %w", rel, err)
		}
		return "", err
	}
	if canon == "" {
		canon = name
	}
	l.shared.sources[canon] = src
	return canon, nil
}

func (l *loader) Inherit(from string) (loaders.Loader, error) {
	return &loader{from: from, shared: l.shared}, nil
}

// positionedParser wraps a control structure so that a failure inside it
// carries its position, and so that values bound by {% set %} join the
// shared list/dict model.
func positionedParser(name string, inner parser.ControlStructureParser) parser.ControlStructureParser {
	return func(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
		tok := args.Current()
		if tok == nil || tok.Type == tokens.EOF {
			tok = p.Current()
		}
		var setRoot string
		if name == "set" {
			if t := args.Current(tokens.Name); t != nil {
				setRoot = t.Val
			}
		}
		cs, err := inner(p, args)
		if err != nil {
			var se *parser.SyntaxError
			if (!errors.As(err, &se) || se.Line == 0) && tok != nil && tok.Line > 0 {
				// An error at the end of the tag's arguments has no token
				// of its own: place it at the tag.
				return nil, &tagPosError{err: err, line: tok.Line, col: tok.Col}
			}
			return nil, err
		}
		ecs, ok := cs.(exec.ControlStructure)
		if !ok {
			return cs, nil
		}
		return &positioned{ControlStructure: ecs, line: tok.Line, col: tok.Col, setRoot: setRoot}, nil
	}
}

type positioned struct {
	exec.ControlStructure
	line, col int
	setRoot   string
}

func (p *positioned) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	err := p.ControlStructure.Execute(r, tag)
	if err != nil {
		var pe *posError
		if findErr(err, &pe) {
			return err
		}
		return &posError{line: p.line, col: p.col, err: err}
	}
	if m, ok := p.ControlStructure.(*controlStructures.MacroControlStructure); ok {
		ctx := r.Environment.Context
		if fn, ok := ctx.Get(m.Name); ok {
			if macro, ok := fn.(exec.Macro); ok {
				ctx.Set(m.Name, guardMacro(m.Name, macro))
			}
		}
	}
	if p.setRoot != "" {
		ctx := r.Environment.Context
		if v, ok := ctx.Get(p.setRoot); ok {
			if n := toModel(v); !sameValue(n, v) {
				ctx.Set(p.setRoot, n)
			}
		}
	}
	return nil
}

func sameValue(a, b any) bool {
	defer func() { _ = recover() }()
	return a == b
}

// maxMacroDepth stops runaway macro recursion before it overflows the
// goroutine stack, which Go cannot recover from.
const maxMacroDepth = 64

func guardMacro(name string, m exec.Macro) exec.Macro {
	depth := 0
	return func(va *exec.VarArgs) *exec.Value {
		if depth >= maxMacroDepth {
			return exec.AsValue(fmt.Errorf("macro %s: recursion deeper than %d", name, maxMacroDepth))
		}
		depth++
		defer func() { depth-- }()
		return m(va)
	}
}

// maxRange bounds range(): gonja's feeds a channel that is drained whole,
// so range(10**9) would spin for minutes.
const maxRange = 100000

func rangeFunc(va *exec.VarArgs) (*exec.Value, error) {
	var n [3]int
	n[2] = 1
	switch len(va.Args) {
	case 1:
		n[1] = va.Args[0].Integer()
	case 2, 3:
		for i, a := range va.Args {
			n[i] = a.Integer()
		}
	default:
		return nil, errors.New("range expected 1 to 3 integer arguments")
	}
	for _, a := range va.Args {
		if !a.IsInteger() {
			return nil, fmt.Errorf("range: %s is not an integer", pyRepr(a))
		}
	}
	start, stop, step := n[0], n[1], n[2]
	if step == 0 {
		return nil, errors.New("range() arg 3 must not be zero")
	}
	l := List{}
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if len(l) >= maxRange {
			return nil, fmt.Errorf("range: more than %d items", maxRange)
		}
		l = append(l, i)
	}
	// The arguments ride past the end of the items (len hides them), for
	// printing the way Python does: range(0, 3).
	rg := make(Range, len(l), len(l)+3)
	copy(rg, l)
	_ = append(rg, start, stop, step)
	return exec.AsValue(&rg), nil
}

type posError struct {
	line, col int
	err       error
}

func (e *posError) Error() string { return e.err.Error() }
func (e *posError) Unwrap() error { return e.err }
func (e *posError) Cause() error  { return e.err }

// Error is a template failure with its position. Line and Column are
// 1-based; 0 when unknown.
type Error struct {
	Template string
	Line     int
	Column   int
	Message  string
	Source   string // the offending line
	Err      error  // the underlying cause, when one is known
	// Trace lists the templates that imported or included Template, the
	// nearest first.
	Trace []Frame
}

// Frame is one template in the chain that led to an error.
type Frame struct {
	Template string
	Line     int
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Template)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Source != "" {
		fmt.Fprintf(&b, "\n    %d | %s", e.Line, e.Source)
		if e.Column > 0 {
			pad := len(fmt.Sprint(e.Line)) + 3 + 4
			fmt.Fprintf(&b, "\n%s%s^", strings.Repeat(" ", pad), caretPad(e.Source, e.Column))
		}
	}
	for _, f := range e.Trace {
		fmt.Fprintf(&b, "\n    imported or included by %s", f.Template)
		if f.Line > 0 {
			fmt.Fprintf(&b, ":%d", f.Line)
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func caretPad(line string, col int) string {
	var b strings.Builder
	for i, r := range []rune(line) {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func sourceLine(source string, line int) string {
	if line <= 0 {
		return ""
	}
	lines := strings.Split(source, "\n")
	if line > len(lines) {
		return ""
	}
	return strings.TrimRight(lines[line-1], "\r")
}

func newError(name, source string, line, col int, msg string, cause error) *Error {
	return &Error{Template: name, Line: line, Column: col, Message: msg, Source: sourceLine(source, line), Err: cause}
}

// findErr walks an error chain, including the *exec.Value wrappers gonja
// puts between errors (they do not unwrap).
func findErr[T error](err error, target *T) bool {
	for i := 0; err != nil && i < 1000; i++ {
		if t, ok := err.(T); ok {
			*target = t
			return true
		}
		err = unwrapOnce(err)
	}
	return false
}

func unwrapOnce(err error) error {
	switch e := err.(type) {
	case *exec.Value:
		if inner, ok := e.Interface().(error); ok && inner != error(e) {
			return inner
		}
		return nil
	case interface{ Unwrap() error }:
		return e.Unwrap()
	case interface{ Cause() error }:
		return e.Cause()
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// strMethods is gonja's string methods with Python's signatures where
// gonja's differ (replace's count is optional in Python).
func strMethods() *exec.MethodSet[string] {
	m := map[string]exec.Method[string]{}
	for _, name := range []string{"capitalize", "capwords", "casefold", "center", "count", "encode", "endswith",
		"expandtabs", "find", "format", "format_map", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
		"islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
		"partition", "removeprefix", "removesuffix", "rfind", "rjust", "rpartition", "rsplit", "rstrip",
		"split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill", "index", "rindex"} {
		if f, ok := builtins.Methods.Str.Get(name); ok {
			m[name] = f
		}
	}
	for name, f := range pyStrMethods {
		m[name] = f
	}
	m["replace"] = func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 2, 3); err != nil {
			return nil, err
		}
		n := -1
		if len(a.Args) == 3 {
			n = a.Args[2].Integer()
		}
		return strings.Replace(self, a.Args[0].String(), a.Args[1].String(), n), nil
	}
	return exec.NewMethodSet(m)
}

// InheritanceOnly forwards the block/extends marker through the wrapper.
func (p *positioned) InheritanceOnly() bool {
	in, ok := p.ControlStructure.(exec.InheritanceNode)
	return ok && in.InheritanceOnly()
}
