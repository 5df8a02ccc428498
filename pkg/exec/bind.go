package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Type is the declared type of a parameter. Values arriving as JSON are
// converted the way Salt's CLI users expect: "10" is a fine int, "yes" a
// fine bool, 3.0 a fine int; 3.5 is not an int.
type Type string

const (
	Any       Type = "any"
	Str       Type = "str"
	Int       Type = "int"
	Float     Type = "float"
	Bool      Type = "bool"
	List      Type = "list"
	Dict      Type = "dict"
	StrOrList Type = "str|list"
)

// ArgDoc declares one parameter. The same declaration drives binding,
// sys.doc and docs/functions.md, so it is written once.
type ArgDoc struct {
	Name     string
	Type     Type // "" means Any
	Default  any  // value when not given; nil is Salt's None
	Required bool
	// KeywordOnly parameters come after Salt's *args and are never filled
	// by position (grains.item's default and delimiter).
	KeywordOnly bool
	Doc         string
}

// Doc describes a function for binding and for the documentation.
type Doc struct {
	Summary string
	Args    []ArgDoc
	// Varargs names Salt's *args: extra positional arguments are collected
	// into Args.Rest. Empty means extras are refused.
	Varargs string
	// Kwargs accepts undeclared keyword arguments into Args.RestKw (Salt's
	// **kwargs). Without it an unknown keyword is an error.
	Kwargs  bool
	Returns string
	Example string
}

// BoundFunc is a function whose arguments were already bound by Bind.
type BoundFunc func(ctx context.Context, env *Env, a *Args) (any, error)

// Bind adapts fn to a Func: positional arguments fill doc.Args in order,
// then keyword arguments by name; each value is converted to its declared
// Type. Keywords starting with "__" are the caller's bookkeeping (Salt's
// __pub_jid and friends) and are dropped.
func Bind(fun string, doc Doc, fn BoundFunc) Func {
	return func(ctx context.Context, env *Env, args []any, kwargs map[string]any) (any, error) {
		a, err := BindArgs(fun, doc, args, kwargs)
		if err != nil {
			return nil, err
		}
		return fn(ctx, env, a)
	}
}

// Args holds bound values. Getters panic on names the Doc does not declare
// or on the wrong getter for a Type: both are programming errors that the
// registry's recover turns into an error, and the tests exercise.
type Args struct {
	fun    string
	decl   map[string]ArgDoc
	vals   map[string]any
	given  map[string]bool
	Rest   []any          // extra positional arguments (Doc.Varargs)
	RestKw map[string]any // extra keyword arguments (Doc.Kwargs)
}

// BindArgs binds without calling; see Bind.
func BindArgs(fun string, doc Doc, args []any, kwargs map[string]any) (*Args, error) {
	a := &Args{
		fun:    fun,
		decl:   make(map[string]ArgDoc, len(doc.Args)),
		vals:   make(map[string]any, len(doc.Args)),
		given:  map[string]bool{},
		RestKw: map[string]any{},
	}
	for _, p := range doc.Args {
		a.decl[p.Name] = p
	}
	var positional []ArgDoc
	for _, p := range doc.Args {
		if !p.KeywordOnly {
			positional = append(positional, p)
		}
	}
	for i, v := range args {
		if i >= len(positional) {
			if doc.Varargs == "" {
				return nil, badArg(fun, "", "takes at most %d positional argument(s) (%d given)", len(positional), len(args))
			}
			a.Rest = append(a.Rest, v)
			continue
		}
		if err := a.set(positional[i], v); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(kwargs))
	for k := range kwargs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic error for several bad keys
	for _, k := range keys {
		v := kwargs[k]
		if strings.HasPrefix(k, "__") {
			continue
		}
		p, ok := a.decl[k]
		if !ok {
			if doc.Kwargs {
				a.RestKw[k] = v
				continue
			}
			return nil, badArg(fun, k, "unexpected keyword argument (accepted: %s)", acceptedNames(doc))
		}
		if a.given[k] {
			return nil, badArg(fun, k, "given both by position and by keyword")
		}
		if err := a.set(p, v); err != nil {
			return nil, err
		}
	}
	for _, p := range doc.Args {
		if a.given[p.Name] {
			continue
		}
		if p.Required {
			return nil, badArg(fun, p.Name, "missing required argument")
		}
		a.vals[p.Name] = p.Default
	}
	return a, nil
}

func acceptedNames(doc Doc) string {
	if len(doc.Args) == 0 {
		return "none"
	}
	names := make([]string, len(doc.Args))
	for i, p := range doc.Args {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func (a *Args) set(p ArgDoc, v any) error {
	if v == nil && p.Type != Any && p.Type != "" {
		// JSON null is Salt's None: take the default, which a required
		// parameter does not have.
		if p.Required {
			return badArg(a.fun, p.Name, "must not be null")
		}
		a.given[p.Name] = true
		a.vals[p.Name] = p.Default
		return nil
	}
	cv, err := convert(p.Type, v)
	if err != nil {
		return badArg(a.fun, p.Name, "%v", err)
	}
	a.given[p.Name] = true
	a.vals[p.Name] = cv
	return nil
}

func convert(t Type, v any) (any, error) {
	switch t {
	case Any, "":
		return v, nil
	case Str:
		switch x := v.(type) {
		case string:
			return x, nil
		case float64, float32, int, int64, int32, uint, uint64, uint32:
			if n, ok := asInt(x); ok {
				return strconv.FormatInt(n, 10), nil
			}
			return fmt.Sprint(x), nil
		}
	case Int:
		if n, ok := asInt(v); ok {
			return int(n), nil
		}
		if s, ok := v.(string); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
				return n, nil
			}
		}
	case Float:
		if f, ok := asFloat(v); ok {
			return f, nil
		}
		if s, ok := v.(string); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, nil
			}
		}
	case Bool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true", "yes", "on", "1":
				return true, nil
			case "false", "no", "off", "0", "":
				return false, nil
			}
		default:
			if n, ok := asInt(v); ok && (n == 0 || n == 1) {
				return n == 1, nil
			}
		}
	case List:
		switch x := v.(type) {
		case []any:
			return x, nil
		case []string:
			out := make([]any, len(x))
			for i, s := range x {
				out[i] = s
			}
			return out, nil
		}
	case Dict:
		if m, ok := v.(map[string]any); ok {
			return m, nil
		}
	case StrOrList:
		switch x := v.(type) {
		case string:
			return x, nil
		case []any, []string:
			return convert(List, x)
		}
	default:
		return nil, fmt.Errorf("undeclared type %q", t)
	}
	return nil, fmt.Errorf("expected %s, got %s", t, describe(v))
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x), true
		}
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	case float32:
		return asInt(float64(x))
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, true
		}
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case float32:
		return asFloat(float64(x))
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	if n, ok := asInt(v); ok {
		return float64(n), true
	}
	return 0, false
}

// describe names a value's JSON type with a short preview for errors.
func describe(v any) string {
	var kind string
	switch v.(type) {
	case nil:
		return "null"
	case string:
		kind = "string"
	case bool:
		kind = "bool"
	case []any, []string:
		kind = "list"
	case map[string]any:
		kind = "dict"
	default:
		if _, ok := asFloat(v); ok {
			kind = "number"
		} else {
			kind = fmt.Sprintf("%T", v)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return kind
	}
	s := string(b)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return kind + " " + s
}

func (a *Args) get(name string, want ...Type) any {
	p, ok := a.decl[name]
	if !ok {
		panic(fmt.Sprintf("%s: argument %q read but not declared", a.fun, name))
	}
	t := p.Type
	if t == "" {
		t = Any
	}
	okType := false
	for _, w := range want {
		if w == t {
			okType = true
		}
	}
	if !okType {
		panic(fmt.Sprintf("%s: argument %q is declared %s, read as %v", a.fun, name, t, want))
	}
	return a.vals[name]
}

// Value returns any parameter as bound.
func (a *Args) Value(name string) any {
	return a.get(name, Any, Str, Int, Float, Bool, List, Dict, StrOrList)
}

// IsSet reports whether the caller passed the parameter (even as null).
func (a *Args) IsSet(name string) bool {
	_ = a.Value(name)
	return a.given[name]
}

// Str returns a Str parameter; "" for None.
func (a *Args) Str(name string) string {
	s, _ := a.get(name, Str).(string)
	return s
}

// Int returns an Int parameter; 0 for None.
func (a *Args) Int(name string) int {
	n, _ := a.get(name, Int).(int)
	return n
}

// Float returns a Float parameter and whether it is not None.
func (a *Args) Float(name string) (float64, bool) {
	switch x := a.get(name, Float).(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

// Bool returns a Bool parameter; false for None.
func (a *Args) Bool(name string) bool {
	b, _ := a.get(name, Bool).(bool)
	return b
}

// List returns a List parameter; nil for None.
func (a *Args) List(name string) []any {
	l, _ := a.get(name, List).([]any)
	return l
}

// Dict returns a Dict parameter; nil for None.
func (a *Args) Dict(name string) map[string]any {
	m, _ := a.get(name, Dict).(map[string]any)
	return m
}
