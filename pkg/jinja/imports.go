package jinja

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/parser"
	"github.com/brine-cm/brine/internal/gonja/tokens"
)

// Salt formulas share data through map.jinja: `{% from "x/map.jinja"
// import x with context %}` imports a *variable*, which gonja's import
// (macros only) cannot do. Salt also adds import_yaml/import_json/
// import_text. Salt puts its context in the template globals, so imported
// templates see grains, pillar and salt whether or not "with context" is
// written; the imported template here always renders in a child of the
// importer's context.

type importStmt struct {
	location *tokens.Token
	file     nodes.Expression
	alias    string            // import ... as alias (whole module)
	names    map[string]string // from ... import name as alias
	kind     string            // "jinja", "yaml", "json", "text"
	// withContext renders the imported template in the importer's
	// context; without it, only in the globals (Salt's context).
	withContext bool
}

func (s *importStmt) Position() *tokens.Token { return s.location }
func (s *importStmt) String() string {
	return fmt.Sprintf("ImportControlStructure(Line=%d Col=%d)", s.location.Line, s.location.Col)
}

func parseImportAs(kind string) parser.ControlStructureParser {
	return func(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
		s := &importStmt{location: args.Current(), kind: kind}
		expr, err := args.ParseExpression()
		if err != nil {
			return nil, err
		}
		s.file = expr
		if args.MatchName("as") == nil {
			return nil, args.Error(`expected "as"`, args.Current())
		}
		alias := args.Match(tokens.Name)
		if alias == nil {
			return nil, args.Error("expected a name after as", args.Current())
		}
		s.alias = alias.Val
		if w := args.MatchName("with", "without"); w != nil {
			if args.MatchName("context") == nil {
				return nil, args.Error(`expected "context"`, args.Current())
			}
			s.withContext = w.Val == "with"
		}
		if !args.End() {
			return nil, args.Error("unexpected tokens after import", args.Current())
		}
		return s, nil
	}
}

func parseFromImport(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	s := &importStmt{location: args.Current(), kind: "jinja", names: map[string]string{}}
	expr, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	s.file = expr
	if args.MatchName("import") == nil {
		return nil, args.Error(`expected "import"`, args.Current())
	}
	for !args.End() {
		if w := args.MatchName("with", "without"); w != nil {
			if args.MatchName("context") == nil {
				return nil, args.Error(`expected "context"`, args.Current())
			}
			s.withContext = w.Val == "with"
			break
		}
		name := args.Match(tokens.Name)
		if name == nil {
			return nil, args.Error("expected a name to import", args.Current())
		}
		alias := name.Val
		if args.MatchName("as") != nil {
			a := args.Match(tokens.Name)
			if a == nil {
				return nil, args.Error("expected a name after as", args.Current())
			}
			alias = a.Val
		}
		s.names[alias] = name.Val
		args.Match(tokens.Comma)
	}
	if len(s.names) == 0 {
		return nil, args.Error("nothing to import", args.Current())
	}
	return s, nil
}

func (s *importStmt) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	fv := r.Eval(s.file)
	if fv.IsError() {
		return fv
	}
	name, err := r.Loader.Resolve(fv.String())
	if err != nil {
		return &loadError{what: "import", name: fv.String(), err: err}
	}
	// Jinja2 renders a template imported without context once per
	// render and hands out the same module after that: changes one
	// importer makes to its dicts are seen by the next.
	var cache map[string]any
	cacheKey := s.kind + "\x00" + name
	if l, ok := r.Loader.(*loader); ok && !s.withContext {
		cache = l.shared.modules
	}
	if v, ok := cache[cacheKey]; ok {
		return s.bind(r, name, v)
	}
	ld, err := r.Loader.Inherit(name)
	if err != nil {
		return fmt.Errorf("import %q: %w", name, err)
	}
	rd, err := ld.Read(name)
	if err != nil {
		return fmt.Errorf("import %q: %w", name, err)
	}
	src, err := io.ReadAll(rd)
	if err != nil {
		return fmt.Errorf("import %q: %w", name, err)
	}
	if line, col, ch, bad := badTagChar(string(src)); bad {
		return newError(name, string(src), line, col, fmt.Sprintf("template syntax error: unexpected character %q in a tag", ch), nil)
	}
	tpl, err := exec.NewTemplate(name, r.Config, ld, r.Environment)
	if err != nil {
		return parseError(name, string(src), err)
	}
	var out bytes.Buffer
	env := &exec.Environment{
		Context:           renderContext(r, s.withContext),
		Globals:           r.Environment.Globals,
		Hooks:             r.Environment.Hooks,
		Filters:           r.Environment.Filters,
		Tests:             r.Environment.Tests,
		ControlStructures: r.Environment.ControlStructures,
		Methods:           r.Environment.Methods,
	}
	sub := exec.NewRenderer(env, &out, r.Config, ld, tpl)
	if err := sub.Execute(); err != nil {
		return runtimeError(name, string(src), tpl.Root(), err)
	}

	var value any
	switch s.kind {
	case "text":
		value = out.String()
	case "yaml":
		if value, err = loadYAML(out.String()); err != nil {
			return fmt.Errorf("import_yaml %q: %w", name, err)
		}
	case "json":
		if value, err = loadJSON(out.String()); err != nil {
			return fmt.Errorf("import_json %q: %w", name, err)
		}
	case "jinja":
		exported := map[string]any{}
		for _, n := range topLevelSets(tpl.Root()) {
			if v, ok := env.Context.Get(n); ok {
				exported[n] = v
			}
		}
		for n, m := range tpl.Macros() {
			fn, err := exec.MacroNodeToFunc(m, sub)
			if err != nil {
				return fmt.Errorf("import %q: macro %s: %w", name, n, err)
			}
			exported[n] = fileMacro(name, string(src), tpl, guardMacro(n, fn))
		}
		d := &exec.Dict{}
		for _, k := range sortedKeys(exported) {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(exported[k])})
		}
		value = d
	}
	value = toModel(value)
	if cache != nil {
		cache[cacheKey] = value
	}
	return s.bind(r, name, value)
}

// bind sets the imported module (or the names taken from it).
func (s *importStmt) bind(r *exec.Renderer, name string, module any) error {
	if s.names == nil {
		r.Environment.Context.Set(s.alias, module)
		return nil
	}
	for alias, n := range s.names {
		v, ok := dictGet(exec.AsValue(module), exec.AsValue(n))
		if !ok {
			return fmt.Errorf("cannot import %q from %q: it defines no such variable or macro", n, name)
		}
		r.Environment.Context.Set(alias, v.Interface())
	}
	return nil
}

// topLevelSets names the variables a template assigns at its top level,
// which is what Jinja exports from it.
func topLevelSets(root *nodes.Template) []string {
	var names []string
	for _, n := range root.Nodes {
		if b, ok := n.(*nodes.ControlStructureBlock); ok {
			if p, ok := b.ControlStructure.(*positioned); ok && p.setRoot != "" {
				names = append(names, p.setRoot)
			}
		}
	}
	return names
}

// renderContext is the context an imported or included template renders
// in: a child of the caller's, or of the globals alone.
func renderContext(r *exec.Renderer, withContext bool) *exec.Context {
	if withContext || r.Environment.Globals == nil {
		return r.Environment.Context.Inherit()
	}
	return r.Environment.Globals.Inherit()
}

// includeStmt is Jinja's include: a name or a list of names (the first
// that exists), "ignore missing", and with/without context. The included
// template renders in a child context, so its {% set %} stays its own.
type includeStmt struct {
	location      *tokens.Token
	file          nodes.Expression
	ignoreMissing bool
	withContext   bool
}

func (s *includeStmt) Position() *tokens.Token { return s.location }
func (s *includeStmt) String() string {
	return fmt.Sprintf("IncludeControlStructure(Line=%d Col=%d)", s.location.Line, s.location.Col)
}

func parseInclude(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	s := &includeStmt{location: args.Current(), withContext: true}
	expr, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	s.file = expr
	if args.MatchName("ignore") != nil {
		if args.MatchName("missing") == nil {
			return nil, args.Error(`expected "missing" after "ignore"`, args.Current())
		}
		s.ignoreMissing = true
	}
	if w := args.MatchName("with", "without"); w != nil {
		if args.MatchName("context") == nil {
			return nil, args.Error(`expected "context"`, args.Current())
		}
		s.withContext = w.Val == "with"
	}
	if !args.End() {
		return nil, args.Error("unexpected tokens after include", args.Current())
	}
	return s, nil
}

func (s *includeStmt) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	fv := r.Eval(s.file)
	if fv.IsError() {
		return fv
	}
	var names []string
	switch x := modelOf(fv).(type) {
	case *List:
		for _, it := range *x {
			names = append(names, pyStr(exec.ToValue(it)))
		}
	case *Tuple:
		for _, it := range *x {
			names = append(names, pyStr(exec.ToValue(it)))
		}
	default:
		names = []string{fv.String()}
	}
	var name string
	var lastErr error
	for _, n := range names {
		canon, err := r.Loader.Resolve(n)
		if err == nil {
			name = canon
			break
		}
		lastErr = &loadError{what: "include", name: n, err: err}
	}
	if name == "" {
		if s.ignoreMissing {
			return nil
		}
		if lastErr == nil {
			lastErr = errors.New("include: no template named")
		}
		return lastErr
	}
	ld, err := r.Loader.Inherit(name)
	if err != nil {
		return fmt.Errorf("include %q: %w", name, err)
	}
	rd, err := ld.Read(name)
	if err != nil {
		return fmt.Errorf("include %q: %w", name, err)
	}
	src, err := io.ReadAll(rd)
	if err != nil {
		return fmt.Errorf("include %q: %w", name, err)
	}
	if line, col, ch, bad := badTagChar(string(src)); bad {
		return newError(name, string(src), line, col, fmt.Sprintf("template syntax error: unexpected character %q in a tag", ch), nil)
	}
	tpl, err := exec.NewTemplate(name, r.Config, ld, r.Environment)
	if err != nil {
		return parseError(name, string(src), err)
	}
	env := *r.Environment
	env.Context = renderContext(r, s.withContext)
	sub := exec.NewRenderer(&env, r.Output, r.Config, ld, tpl)
	if err := sub.Execute(); err != nil {
		return runtimeError(name, string(src), tpl.Root(), err)
	}
	return nil
}

// fileMacro makes a failure inside a macro imported from another template
// an *Error of that template (its line and source), so the report names
// the macro's file and then the caller's.
func fileMacro(name, src string, tpl *exec.Template, m exec.Macro) exec.Macro {
	return func(va *exec.VarArgs) *exec.Value {
		out := m(va)
		if out != nil && out.IsError() {
			var e *Error
			if err, ok := out.Interface().(error); ok && !findErr(err, &e) {
				return exec.AsValue(runtimeError(name, src, tpl.Root(), err))
			}
		}
		return out
	}
}

// loadError is a template that could not be found or read; reports show
// it whole (the name asked for and why), not just the loader's cause.
type loadError struct {
	what, name string
	err        error
}

func (e *loadError) Error() string { return fmt.Sprintf("%s %q: %v", e.what, e.name, e.err) }
func (e *loadError) Unwrap() error { return e.err }
