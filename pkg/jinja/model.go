package jinja

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/pkg/state/render/saltyaml"
)

// List is how every list lives inside a template. gonja keeps plain Go
// slices by value, so `{% do l.append(x) %}` inside a for loop would only
// grow a copy private to the loop body; Python lists are shared references,
// and Salt states rely on that. A *List is shared the same way.
type List []any

// String renders the list like Python's repr, which is what Jinja prints.
func (l *List) String() string { return pyRepr(l) }

// Tuple is an immutable pair or row (dict items, dictsort); it only
// differs from List in how it prints.
type Tuple []any

// String renders the tuple like Python's repr.
func (t *Tuple) String() string { return pyRepr(t) }

// KeysView, ValuesView and ItemsView are what a dict's keys(), values()
// and items() return: they iterate like lists and print as Python's
// dict_keys([...]), dict_values([...]), dict_items([...]).
type (
	KeysView   []any
	ValuesView []any
	ItemsView  []any
)

// Range is what range() returns: its items, printed as range(a, b[, c]).
type Range []any

func (v *Range) String() string { return pyRepr(v) }

func (v *KeysView) String() string   { return pyRepr(v) }
func (v *ValuesView) String() string { return pyRepr(v) }
func (v *ItemsView) String() string  { return pyRepr(v) }

// toModel converts Go data into the template's data model: maps become
// ordered *exec.Dict (keys sorted, so iteration is deterministic), slices
// become *List, Func values become gonja callables. Containers already in
// the model are normalised in place so that aliases stay aliases.
func toModel(v any) any {
	return (&normaliser{seen: map[uintptr]bool{}}).norm(v)
}

type normaliser struct{ seen map[uintptr]bool }

func (n *normaliser) norm(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int, float64:
		return v
	case *exec.Value:
		if x == nil {
			return nil
		}
		return n.norm(x.Interface())
	case *List:
		if x == nil {
			return x
		}
		p := reflect.ValueOf(x).Pointer()
		if n.seen[p] {
			return x
		}
		n.seen[p] = true
		for i := range *x {
			(*x)[i] = n.norm((*x)[i])
		}
		return x
	case *Tuple:
		if x == nil {
			return x
		}
		for i := range *x {
			(*x)[i] = n.norm((*x)[i])
		}
		return x
	case *exec.Dict:
		if x == nil {
			return x
		}
		p := reflect.ValueOf(x).Pointer()
		if n.seen[p] {
			return x
		}
		n.seen[p] = true
		for _, pair := range x.Pairs {
			pair.Value = exec.AsValue(n.norm(pair.Value))
			if pair.Key == nil {
				pair.Key = exec.AsValue(nil)
			}
		}
		return x
	case exec.Dict:
		d := &exec.Dict{Pairs: slices.Clone(x.Pairs)}
		return n.norm(d)
	case Func:
		return wrapFunc("function", x)
	case func(args []any, kwargs map[string]any) (any, error):
		return wrapFunc("function", x)
	case namespace:
		for k, item := range x {
			x[k] = n.norm(item)
		}
		return x
	case exec.ValuesList:
		l := make(List, len(x))
		for i, item := range x {
			l[i] = n.norm(item)
		}
		return &l
	case []any:
		l := make(List, len(x))
		for i, item := range x {
			l[i] = n.norm(item)
		}
		return &l
	case ordered:
		d := &exec.Dict{}
		for _, k := range x.Keys() {
			item, _ := x.Get(k)
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(n.norm(item))})
		}
		return d
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d := &exec.Dict{Pairs: make([]*exec.Pair, 0, len(keys))}
		for _, k := range keys {
			item := x[k]
			if f, ok := item.(Func); ok {
				item = wrapFunc(k, f)
			}
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(n.norm(item))})
		}
		return d
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if rv.Uint() > math.MaxInt64 {
			return float64(rv.Uint())
		}
		return int(rv.Uint())
	case reflect.Float32:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			return string(rv.Bytes())
		}
		l := make(List, rv.Len())
		for i := range l {
			l[i] = n.norm(rv.Index(i).Interface())
		}
		return &l
	case reflect.Map:
		keys := rv.MapKeys()
		strs := make([]string, len(keys))
		idx := make(map[string]reflect.Value, len(keys))
		for i, k := range keys {
			strs[i] = fmt.Sprint(k.Interface())
			idx[strs[i]] = k
		}
		slices.Sort(strs)
		d := &exec.Dict{Pairs: make([]*exec.Pair, 0, len(keys))}
		for _, k := range strs {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(n.norm(rv.MapIndex(idx[k]).Interface()))})
		}
		return d
	}
	// Callables from gonja (loop.cycle, joiner...), channels from range()
	// and anything exotic pass through untouched.
	return v
}

// fromModel turns template values back into plain Go data (for Func
// arguments, filters and the caller).
func fromModel(v any) any {
	return fromModelDepth(v, 0)
}

// maxDepth stops self-referencing structures ({% do l.append(l) %}) from
// recursing forever on the way out.
const maxDepth = 100

func fromModelDepth(v any, depth int) any {
	if depth > maxDepth {
		return nil
	}
	switch x := v.(type) {
	case nil, bool, string, int, float64:
		return v
	case *exec.Value:
		if x == nil {
			return nil
		}
		return fromModelDepth(x.Interface(), depth+1)
	case *List:
		if x == nil {
			return []any(nil)
		}
		out := make([]any, len(*x))
		for i, item := range *x {
			out[i] = fromModelDepth(item, depth+1)
		}
		return out
	case *Tuple:
		if x == nil {
			return []any(nil)
		}
		return fromModelDepth((*List)(x), depth)
	case *exec.Dict:
		if x == nil {
			return map[string]any(nil)
		}
		out := make(map[string]any, len(x.Pairs))
		for _, p := range x.Pairs {
			out[keyString(p.Key)] = fromModelDepth(p.Value, depth+1)
		}
		return out
	case exec.Dict:
		return fromModelDepth(&x, depth)
	case exec.ValuesList:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = fromModelDepth(item, depth+1)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(rv.Uint())
	case reflect.Float32:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			return string(rv.Bytes())
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = fromModelDepth(rv.Index(i).Interface(), depth+1)
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			out[fmt.Sprint(iter.Key().Interface())] = fromModelDepth(iter.Value().Interface(), depth+1)
		}
		return out
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return fromModelDepth(rv.Elem().Interface(), depth+1)
	}
	return v
}

func keyString(k *exec.Value) string {
	if k == nil {
		return ""
	}
	if k.IsNil() {
		return "None"
	}
	return k.String()
}

// pyRepr renders a value the way Python's repr() does for the types
// templates handle; Jinja prints containers with it.
func pyRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v, 0)
	return b.String()
}

func writeRepr(b *strings.Builder, v any, depth int) {
	if depth > maxDepth {
		b.WriteString("[...]")
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case *exec.Value:
		if x == nil || x.IsNil() {
			b.WriteString("None")
			return
		}
		writeRepr(b, x.Interface(), depth)
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		b.WriteString(pyStrRepr(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		b.WriteString(pyFloat(x))
	case *List:
		b.WriteByte('[')
		for i, item := range *x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, item, depth+1)
		}
		b.WriteByte(']')
	case *Tuple:
		b.WriteByte('(')
		for i, item := range *x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, item, depth+1)
		}
		if len(*x) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case *Range:
		args := (*x)[len(*x):cap(*x)]
		if len(args) == 3 {
			if args[2] == 1 {
				fmt.Fprintf(b, "range(%d, %d)", args[0], args[1])
			} else {
				fmt.Fprintf(b, "range(%d, %d, %d)", args[0], args[1], args[2])
			}
		} else {
			writeRepr(b, (*List)(x), depth+1)
		}
	case *KeysView:
		b.WriteString("dict_keys(")
		writeRepr(b, (*List)(x), depth+1)
		b.WriteByte(')')
	case *ValuesView:
		b.WriteString("dict_values(")
		writeRepr(b, (*List)(x), depth+1)
		b.WriteByte(')')
	case *ItemsView:
		b.WriteString("dict_items(")
		writeRepr(b, (*List)(x), depth+1)
		b.WriteByte(')')
	case namespace:
		b.WriteString("<Namespace {")
		for i, k := range sortedKeys(x) {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, k, depth+1)
			b.WriteString(": ")
			writeRepr(b, x[k], depth+1)
		}
		b.WriteString("}>")
	case exec.ValuesList:
		b.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, item, depth+1)
		}
		b.WriteByte(']')
	case *exec.Dict:
		b.WriteByte('{')
		for i, p := range x.Pairs {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, p.Key, depth+1)
			b.WriteString(": ")
			writeRepr(b, p.Value, depth+1)
		}
		b.WriteByte('}')
	default:
		m := toModel(v)
		switch m.(type) {
		case *List, *exec.Dict, int, string, float64:
			writeRepr(b, m, depth+1)
		default:
			b.WriteString(exec.AsValue(v).String())
		}
	}
}

// pyStrRepr quotes like Python: single quotes unless the string holds a
// single quote and no double quote.
func pyStrRepr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// pyFloat formats like Python's float repr.
func pyFloat(f float64) string { return saltyaml.PyFloat(f) }
