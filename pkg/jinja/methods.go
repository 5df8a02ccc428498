package jinja

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/brine-cm/brine/internal/gonja/exec"
)

// gonja hands dict and list methods a copy of the receiver, so update()
// and append() were lost. These work on the receiver itself (a *List,
// *exec.Dict or namespace), as Python's methods do.

var listMethods = exec.NewMethodSet[[]any](map[string]exec.Method[[]any]{
	"append": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		return nil, mutateList(self, func(l *List) { *l = append(*l, toModel(a.Args[0])) })
	},
	"extend": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		items := iterItems(a.Args[0])
		return nil, mutateList(self, func(l *List) {
			for _, it := range items {
				*l = append(*l, toModel(it))
			}
		})
	},
	"insert": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 2, 2); err != nil {
			return nil, err
		}
		return nil, mutateList(self, func(l *List) {
			i := pyIndex(a.Args[0].Integer(), len(*l), true)
			*l = slices.Insert(*l, i, toModel(a.Args[1]))
		})
	},
	"pop": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 1); err != nil {
			return nil, err
		}
		var out any
		var err error
		merr := mutateList(self, func(l *List) {
			if len(*l) == 0 {
				err = errors.New("pop from empty list")
				return
			}
			i := len(*l) - 1
			if len(a.Args) == 1 {
				i = pyIndex(a.Args[0].Integer(), len(*l), false)
				if i < 0 || i >= len(*l) {
					err = errors.New("pop index out of range")
					return
				}
			}
			out = (*l)[i]
			*l = slices.Delete(*l, i, i+1)
		})
		if merr != nil {
			return nil, merr
		}
		return out, err
	},
	"remove": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		var err error
		merr := mutateList(self, func(l *List) {
			for i, it := range *l {
				if pyEqual(it, a.Args[0]) {
					*l = slices.Delete(*l, i, i+1)
					return
				}
			}
			err = errors.New("list.remove(x): x not in list")
		})
		return nil, errors.Join(merr, err)
	},
	"index": func(items []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 3); err != nil {
			return nil, err
		}
		all := listItems(self)
		start, end := 0, len(all)
		if len(a.Args) > 1 {
			start = pyIndex(a.Args[1].Integer(), len(all), true)
		}
		if len(a.Args) > 2 {
			end = pyIndex(a.Args[2].Integer(), len(all), true)
		}
		for i := start; i < end; i++ {
			if pyEqual(all[i], a.Args[0]) {
				return i, nil
			}
		}
		return nil, fmt.Errorf("%s is not in list", pyRepr(a.Args[0]))
	},
	"count": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		n := 0
		for _, it := range listItems(self) {
			if pyEqual(it, a.Args[0]) {
				n++
			}
		}
		return n, nil
	},
	"reverse": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		return nil, mutateList(self, func(l *List) { slices.Reverse(*l) })
	},
	"sort": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		reverse := a.GetKeywordArgument("reverse", false).IsTrue()
		var sortErr error
		err := mutateList(self, func(l *List) {
			sorted := slices.Clone(*l)
			slices.SortStableFunc(sorted, func(x, y any) int {
				c, err := pyCompare(x, y)
				if err != nil && sortErr == nil {
					sortErr = pyErrorf("TypeError: '<' not supported between instances of '%s' and '%s'", typeName(unwrapModel(x)), typeName(unwrapModel(y)))
				}
				if reverse {
					return -c
				}
				return c
			})
			if sortErr == nil {
				copy(*l, sorted)
			}
		})
		if sortErr != nil {
			return nil, sortErr
		}
		return nil, err
	},
	"copy": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		l := List(slices.Clone(listItems(self)))
		return &l, nil
	},
	"clear": func(_ []any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		return nil, mutateList(self, func(l *List) { *l = (*l)[:0] })
	},
})

func wantArgs(a *exec.VarArgs, lo, hi int) error {
	if len(a.Args) < lo || len(a.Args) > hi {
		if lo == hi {
			return fmt.Errorf("takes %d positional argument(s) but %d were given", lo, len(a.Args))
		}
		return fmt.Errorf("takes %d to %d positional arguments but %d were given", lo, hi, len(a.Args))
	}
	return nil
}

func pyIndex(i, n int, clamp bool) int {
	if i < 0 {
		i += n
	}
	if clamp {
		i = max(0, min(i, n))
	}
	return i
}

// mutateList applies f to the list behind self. A list that is not yet a
// shared *List (a literal used in place) is mutated as a fresh copy that
// gonja then stores back under the variable's name.
func mutateList(self *exec.Value, f func(*List)) error {
	if l, ok := self.Interface().(*List); ok {
		f(l)
		return nil
	}
	l := List(slices.Clone(listItems(self)))
	f(&l)
	*self = *exec.AsValue(&l)
	return nil
}

func listItems(v *exec.Value) []any {
	switch x := v.Interface().(type) {
	case *List:
		return *x
	case *Tuple:
		return *x
	case *KeysView:
		return *x
	case *ValuesView:
		return *x
	case *ItemsView:
		return *x
	case *Range:
		return *x
	case nil:
		return nil
	}
	var out []any
	v.Iterate(func(_, _ int, key, _ *exec.Value) bool {
		out = append(out, key.Interface())
		return true
	}, func() {})
	return out
}

func iterItems(v *exec.Value) []any {
	if d, ok := v.Interface().(*exec.Dict); ok {
		out := make([]any, len(d.Pairs))
		for i, p := range d.Pairs {
			out[i] = p.Key.Interface()
		}
		return out
	}
	return listItems(v)
}

var dictMethods = exec.NewMethodSet[map[string]any](map[string]exec.Method[map[string]any]{
	"keys": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		l := KeysView{}
		for _, p := range dictPairs(self) {
			l = append(l, p.Key.Interface())
		}
		return &l, nil
	},
	"values": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		l := ValuesView{}
		for _, p := range dictPairs(self) {
			l = append(l, p.Value.Interface())
		}
		return &l, nil
	},
	"items": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		v := ItemsView(*itemsList(self))
		return &v, nil
	},
	"get": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 2); err != nil {
			return nil, err
		}
		if v, ok := dictGet(self, a.Args[0]); ok {
			return v.Interface(), nil
		}
		if len(a.Args) == 2 {
			return a.Args[1].Interface(), nil
		}
		return nil, nil
	},
	"pop": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 2); err != nil {
			return nil, err
		}
		if v, ok := dictGet(self, a.Args[0]); ok {
			dictDelete(self, a.Args[0])
			return v.Interface(), nil
		}
		if len(a.Args) == 2 {
			return a.Args[1].Interface(), nil
		}
		return nil, fmt.Errorf("KeyError: %s", pyRepr(a.Args[0]))
	},
	"setdefault": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 2); err != nil {
			return nil, err
		}
		if v, ok := dictGet(self, a.Args[0]); ok {
			return v.Interface(), nil
		}
		var def any
		if len(a.Args) == 2 {
			def = toModel(a.Args[1])
		}
		return def, dictSet(self, a.Args[0], def)
	},
	"update": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 1); err != nil {
			return nil, err
		}
		if len(a.Args) == 1 {
			for _, p := range dictPairs(a.Args[0]) {
				if err := dictSet(self, p.Key, toModel(p.Value)); err != nil {
					return nil, err
				}
			}
		}
		for _, k := range a.KwNames() {
			if err := dictSet(self, exec.AsValue(k), toModel(a.KwArgs[k])); err != nil {
				return nil, err
			}
		}
		return nil, nil
	},
	"copy": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		d := &exec.Dict{}
		for _, p := range dictPairs(self) {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: p.Key, Value: p.Value})
		}
		return d, nil
	},
	"popitem": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		pairs := dictPairs(self)
		if len(pairs) == 0 {
			return nil, pyErrorf("KeyError: 'popitem(): dictionary is empty'")
		}
		last := pairs[len(pairs)-1]
		dictDelete(self, last.Key)
		return &Tuple{last.Key.Interface(), last.Value.Interface()}, nil
	},
	"clear": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 0); err != nil {
			return nil, err
		}
		for _, p := range dictPairs(self) {
			dictDelete(self, p.Key)
		}
		return nil, nil
	},
})

func itemsList(v *exec.Value) *List {
	l := List{}
	for _, p := range dictPairs(v) {
		pair := Tuple{p.Key.Interface(), p.Value.Interface()}
		l = append(l, &pair)
	}
	return &l
}

// dictPairs lists a dict's entries in iteration order. Anything that is
// not a dict (a list of pairs, as Python's dict.update accepts) is read
// as key/value pairs.
func dictPairs(v *exec.Value) []*exec.Pair {
	switch x := v.Interface().(type) {
	case *exec.Dict:
		return x.Pairs
	case exec.Dict:
		return x.Pairs
	case nil:
		return nil
	}
	rv := v.Val
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Map {
		d, _ := toModel(fromModel(rv.Interface())).(*exec.Dict)
		if d == nil {
			return nil
		}
		return d.Pairs
	}
	var out []*exec.Pair
	for _, it := range listItems(v) {
		kv := listItems(exec.ToValue(it))
		if len(kv) == 2 {
			out = append(out, &exec.Pair{Key: exec.ToValue(kv[0]), Value: exec.ToValue(kv[1])})
		}
	}
	return out
}

func dictGet(self, key *exec.Value) (*exec.Value, bool) {
	if d, ok := self.Interface().(*exec.Dict); ok {
		for _, p := range d.Pairs {
			if keyEqual(p.Key, key) {
				return p.Value, true
			}
		}
		return nil, false
	}
	if ns, ok := self.Interface().(namespace); ok {
		v, found := ns[key.String()]
		return exec.ToValue(v), found
	}
	return nil, false
}

func dictSet(self, key *exec.Value, v any) error {
	switch d := self.Interface().(type) {
	case *exec.Dict:
		for _, p := range d.Pairs {
			if keyEqual(p.Key, key) {
				p.Value = exec.AsValue(v)
				return nil
			}
		}
		d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(key.Interface()), Value: exec.AsValue(v)})
		return nil
	case namespace:
		d[key.String()] = v
		return nil
	}
	return fmt.Errorf("cannot modify %s in place", pyRepr(self))
}

func dictDelete(self, key *exec.Value) {
	switch d := self.Interface().(type) {
	case *exec.Dict:
		d.Pairs = slices.DeleteFunc(d.Pairs, func(p *exec.Pair) bool { return keyEqual(p.Key, key) })
	case namespace:
		delete(d, key.String())
	}
}

// compare orders values like Python's < for the types templates sort:
// numbers numerically, everything else by string.
func compare(a, b *exec.Value) int {
	switch {
	case a.IsNumber() && b.IsNumber():
		switch {
		case a.Float() < b.Float():
			return -1
		case a.Float() > b.Float():
			return 1
		}
		return 0
	case a.IsList() && b.IsList():
		la, lb := listItems(a), listItems(b)
		for i := 0; i < len(la) && i < len(lb); i++ {
			if c := compare(exec.ToValue(la[i]), exec.ToValue(lb[i])); c != 0 {
				return c
			}
		}
		return len(la) - len(lb)
	}
	as, bs := a.String(), b.String()
	switch {
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

// keyEqual compares dict keys as Python does (1, 1.0 and True are one
// key), with a fast path for the common string keys.
func keyEqual(a, b *exec.Value) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Val.Kind() == reflect.String && b.Val.Kind() == reflect.String {
		return a.Val.String() == b.Val.String()
	}
	return pyEqual(modelOf(a), modelOf(b))
}
