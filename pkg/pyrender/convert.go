package pyrender

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/brine-cm/brine/pkg/jinja"
)

// Dict is a Python dict as run() returned it, in insertion order: state
// IDs run in the order a file defines them, as with YAML.
type Dict struct {
	Keys []string
	Vals map[string]any // string, int, float64, bool, nil, []any or *Dict
}

// Get returns the value under k.
func (d *Dict) Get(k string) (any, bool) {
	v, ok := d.Vals[k]
	return v, ok
}

// Plain converts a result value (a *Dict anywhere inside) into
// map[string]any, []any and scalars, for JSON and for callers that do not
// care about order.
func Plain(v any) any {
	switch x := v.(type) {
	case *Dict:
		out := make(map[string]any, len(x.Keys))
		for _, k := range x.Keys {
			out[k] = Plain(x.Vals[k])
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Plain(e)
		}
		return out
	}
	return v
}

const maxDepth = 100

// fromStarlark converts a value run() returned into Go data.
func fromStarlark(v starlark.Value, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("value nested more than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.String:
		return string(x), nil
	case starlark.Bytes:
		return string(x), nil
	case starlark.Int:
		if i, ok := x.Int64(); ok && i >= math.MinInt && i <= math.MaxInt {
			return int(i), nil
		}
		f, _ := new(big.Float).SetInt(x.BigInt()).Float64()
		return f, nil
	case starlark.Float:
		return float64(x), nil
	case *starlark.Dict:
		d := &Dict{Vals: make(map[string]any, x.Len())}
		for _, kv := range x.Items() {
			k, err := keyString(kv[0])
			if err != nil {
				return nil, err
			}
			if _, dup := d.Vals[k]; dup {
				return nil, fmt.Errorf("dict keys %s collide once converted to the string %q", kv[0], k)
			}
			val, err := fromStarlark(kv[1], depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%s]: %w", kv[0], err)
			}
			d.Keys = append(d.Keys, k)
			d.Vals[k] = val
		}
		return d, nil
	case starlark.Indexable: // list, tuple
		out := make([]any, x.Len())
		for i := range out {
			e, err := fromStarlark(x.Index(i), depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = e
		}
		return out, nil
	case *starlark.Set:
		var out []any
		it := x.Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			g, err := fromStarlark(e, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %s cannot be part of rendered data", v.Type())
}

// keyString names a dict key as YAML would print it (True, None, 1).
func keyString(k starlark.Value) (string, error) {
	switch x := k.(type) {
	case starlark.String:
		return string(x), nil
	case starlark.Bool:
		if x {
			return "True", nil
		}
		return "False", nil
	case starlark.NoneType:
		return "None", nil
	case starlark.Int, starlark.Float:
		return x.String(), nil
	}
	return "", fmt.Errorf("a %s cannot be a key of rendered data", k.Type())
}

// toStarlark converts Go data (grains, pillar, opts, event data, salt
// function results) into Starlark values. Maps get sorted keys so runs
// are deterministic.
func toStarlark(v any, depth int) (starlark.Value, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("value nested more than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case starlark.Value:
		return x, nil
	case bool:
		return starlark.Bool(x), nil
	case string:
		return starlark.String(x), nil
	case []byte:
		return starlark.String(x), nil
	case int:
		return starlark.MakeInt(x), nil
	case int32:
		return starlark.MakeInt64(int64(x)), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case uint64:
		return starlark.MakeUint64(x), nil
	case float64:
		return starlark.Float(x), nil
	case float32:
		return starlark.Float(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return starlark.MakeInt64(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		return starlark.Float(f), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := starlark.NewDict(len(x))
		for _, k := range keys {
			e, err := toStarlark(x[k], depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", k, err)
			}
			_ = d.SetKey(starlark.String(k), e)
		}
		return d, nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return toStarlark(m, depth)
	case *Dict:
		d := starlark.NewDict(len(x.Keys))
		for _, k := range x.Keys {
			e, err := toStarlark(x.Vals[k], depth+1)
			if err != nil {
				return nil, err
			}
			_ = d.SetKey(starlark.String(k), e)
		}
		return d, nil
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, err := toStarlark(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			l[i] = sv
		}
		return starlark.NewList(l), nil
	case []string:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			l[i] = starlark.String(e)
		}
		return starlark.NewList(l), nil
	case jinja.Func:
		return goFunc("salt function", x), nil
	case func(args []any, kwargs map[string]any) (any, error):
		return goFunc("salt function", x), nil
	}
	return nil, fmt.Errorf("cannot pass a Go %T to #!py", v)
}

// goFunc wraps a salt function (the same jinja.Func templates call) as a
// Starlark builtin.
func goFunc(name string, f func([]any, map[string]any) (any, error)) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		gargs := make([]any, len(args))
		for i, a := range args {
			g, err := fromStarlark(a, 0)
			if err != nil {
				return nil, fmt.Errorf("%s: argument %d: %w", b.Name(), i+1, err)
			}
			gargs[i] = Plain(g)
		}
		gkw := make(map[string]any, len(kwargs))
		for _, kv := range kwargs {
			k, _ := starlark.AsString(kv[0])
			g, err := fromStarlark(kv[1], 0)
			if err != nil {
				return nil, fmt.Errorf("%s: argument %s: %w", b.Name(), k, err)
			}
			gkw[k] = Plain(g)
		}
		res, err := f(gargs, gkw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		return toStarlark(res, 0)
	})
}

// saltDict builds __salt__: a dict of builtins named after the function,
// so errors say which salt function failed.
func saltDict(funcs map[string]any) (*starlark.Dict, error) {
	names := make([]string, 0, len(funcs))
	for n := range funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	d := starlark.NewDict(len(funcs))
	for _, n := range names {
		var f func([]any, map[string]any) (any, error)
		switch x := funcs[n].(type) {
		case jinja.Func:
			f = x
		case func([]any, map[string]any) (any, error):
			f = x
		default:
			return nil, fmt.Errorf("__salt__[%q]: a %T is not a function", n, funcs[n])
		}
		_ = d.SetKey(starlark.String(n), goFunc("__salt__['"+n+"']", f))
	}
	return d, nil
}

// ---- json ----

func jsonModule() *starlarkstruct.Module {
	return module("json", starlark.StringDict{
		"dumps": builtin("dumps", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			var sortKeys bool
			var indent starlark.Value = starlark.None
			var separators starlark.Value = starlark.None
			if err := starlark.UnpackArgs("json.dumps", args, kw, "obj", &v, "sort_keys?", &sortKeys, "indent?", &indent, "separators?", &separators); err != nil {
				return nil, err
			}
			e := jsonEncoder{sortKeys: sortKeys, item: ", ", key: ": "}
			if indent != starlark.None {
				n, err := starlark.AsInt32(indent)
				if err != nil {
					return nil, fmt.Errorf("json.dumps: indent must be an int")
				}
				e.indent = strings.Repeat(" ", n)
				e.item = ","
			}
			if separators != starlark.None {
				t, ok := separators.(starlark.Tuple)
				if !ok || len(t) != 2 {
					return nil, fmt.Errorf("json.dumps: separators must be a (item, key) tuple")
				}
				e.item, _ = starlark.AsString(t[0])
				e.key, _ = starlark.AsString(t[1])
			}
			if err := e.encode(v, 0); err != nil {
				return nil, fmt.Errorf("json.dumps: %w", err)
			}
			return starlark.String(e.b.String()), nil
		}),
		"loads": builtin("loads", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var s starlark.Value
			if err := starlark.UnpackPositionalArgs("json.loads", args, kw, 1, &s); err != nil {
				return nil, err
			}
			p, err := bytesArg("json.loads", s)
			if err != nil {
				return nil, err
			}
			dec := json.NewDecoder(strings.NewReader(string(p)))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("json.loads: %w", err)
			}
			if dec.More() {
				return nil, fmt.Errorf("json.loads: extra data after the JSON value")
			}
			return jsonToStarlark(v, 0)
		}),
	})
}

// jsonToStarlark keeps numbers as Python does: 1 is an int, 1.0 a float.
func jsonToStarlark(v any, depth int) (starlark.Value, error) {
	switch x := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			i, ok := new(big.Int).SetString(string(x), 10)
			if ok {
				return starlark.MakeBigInt(i), nil
			}
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, err
		}
		return starlark.Float(f), nil
	case map[string]any:
		if depth > maxDepth {
			return nil, fmt.Errorf("nested more than %d levels", maxDepth)
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := starlark.NewDict(len(x))
		for _, k := range keys {
			e, err := jsonToStarlark(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			_ = d.SetKey(starlark.String(k), e)
		}
		return d, nil
	case []any:
		if depth > maxDepth {
			return nil, fmt.Errorf("nested more than %d levels", maxDepth)
		}
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, err := jsonToStarlark(e, depth+1)
			if err != nil {
				return nil, err
			}
			l[i] = sv
		}
		return starlark.NewList(l), nil
	}
	return toStarlark(v, depth)
}

// jsonEncoder writes Python's json.dumps layout: ", " and ": " by default.
type jsonEncoder struct {
	b         strings.Builder
	sortKeys  bool
	indent    string
	item, key string
}

func (e *jsonEncoder) newline(depth int) {
	if e.indent != "" {
		e.b.WriteByte('\n')
		e.b.WriteString(strings.Repeat(e.indent, depth))
	}
}

func (e *jsonEncoder) encode(v starlark.Value, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested more than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case starlark.NoneType:
		e.b.WriteString("null")
	case starlark.Bool:
		if x {
			e.b.WriteString("true")
		} else {
			e.b.WriteString("false")
		}
	case starlark.Int:
		e.b.WriteString(x.String())
	case starlark.Float:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("%v is not JSON", f)
		}
		s := strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") {
			s += ".0"
		}
		e.b.WriteString(s)
	case starlark.String, starlark.Bytes:
		s, _ := v.(starlark.String)
		if bs, ok := v.(starlark.Bytes); ok {
			s = starlark.String(bs)
		}
		e.b.WriteString(pyJSONString(string(s)))
	case *starlark.Dict:
		items := x.Items()
		keys := make([]string, len(items))
		for i, kv := range items {
			k, err := keyString(kv[0])
			if err != nil {
				return err
			}
			if kv[0] == starlark.None {
				k = "null"
			} else if b, ok := kv[0].(starlark.Bool); ok {
				k = strings.ToLower(b.String())
			}
			keys[i] = k
		}
		idx := make([]int, len(items))
		for i := range idx {
			idx[i] = i
		}
		if e.sortKeys {
			sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
		}
		e.b.WriteByte('{')
		for n, i := range idx {
			if n > 0 {
				e.b.WriteString(e.item)
			}
			e.newline(depth + 1)
			e.b.WriteString(pyJSONString(keys[i]))
			e.b.WriteString(e.key)
			if err := e.encode(items[i][1], depth+1); err != nil {
				return err
			}
		}
		if len(idx) > 0 {
			e.newline(depth)
		}
		e.b.WriteByte('}')
	case starlark.Indexable:
		e.b.WriteByte('[')
		for i := 0; i < x.Len(); i++ {
			if i > 0 {
				e.b.WriteString(e.item)
			}
			e.newline(depth + 1)
			if err := e.encode(x.Index(i), depth+1); err != nil {
				return err
			}
		}
		if x.Len() > 0 {
			e.newline(depth)
		}
		e.b.WriteByte(']')
	default:
		return fmt.Errorf("a %s is not JSON serializable", v.Type())
	}
	return nil
}

// pyJSONString escapes like Python's json.dumps with ensure_ascii=True.
func pyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r < 0x80:
			b.WriteRune(r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		}
	}
	b.WriteByte('"')
	return b.String()
}
