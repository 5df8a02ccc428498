package apply

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/brine-cm/brine/pkg/state"
)

// args reads a chunk's keyword arguments with Salt's leniency (a string
// where a list is expected is a one-item list) and remembers the first
// mistake, named by function, state id, SLS and key.
type args struct {
	c   state.Chunk
	err error
}

func newArgs(c state.Chunk) *args { return &args{c: c} }

func (a *args) fail(key, format string, v ...any) {
	if a.err == nil {
		a.err = fmt.Errorf("%s.%s %q (id %s in sls %s): argument %q: %s",
			a.c.State, a.c.Fun, a.c.Name, a.c.ID, a.c.SLS, key, fmt.Sprintf(format, v...))
	}
}

func (a *args) get(key string) (any, bool) {
	v, ok := a.c.Args[key]
	if ok && v == nil {
		return nil, false // `key:` with no value means unset, as in Salt
	}
	return v, ok
}

func (a *args) has(key string) bool { _, ok := a.get(key); return ok }

// scalar renders a YAML scalar as Salt would when it wants a string.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

func (a *args) str(key, def string) string {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	s, ok := scalar(v)
	if !ok {
		a.fail(key, "want a string, got %T", v)
	}
	return s
}

func (a *args) boolean(key string, def bool) bool {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case bool:
		return x
	case string:
		switch strings.ToLower(x) {
		case "true", "yes", "on", "1":
			return true
		case "false", "no", "off", "0":
			return false
		}
	}
	a.fail(key, "want True or False, got %v", v)
	return def
}

func (a *args) optBool(key string) *bool {
	if !a.has(key) {
		return nil
	}
	b := a.boolean(key, false)
	return &b
}

func (a *args) integer(key string, def int) int {
	v, ok := a.get(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		if x == math.Trunc(x) {
			return int(x)
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n
		}
	}
	a.fail(key, "want an integer, got %v", v)
	return def
}

func (a *args) seconds(key string) time.Duration {
	v, ok := a.get(key)
	if !ok {
		return 0
	}
	if f, isF := v.(float64); isF && f > 0 {
		return time.Duration(f * float64(time.Second))
	}
	n := a.integer(key, 0)
	if n < 0 {
		a.fail(key, "must not be negative")
	}
	return time.Duration(n) * time.Second
}

// list accepts a string (one item) or a list of scalars.
func (a *args) list(key string) []string {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	if s, ok := scalar(v); ok {
		return []string{s}
	}
	l, ok := v.([]any)
	if !ok {
		a.fail(key, "want a string or a list of strings, got %T", v)
		return nil
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, ok := scalar(e)
		if !ok {
			a.fail(key, "item %d: want a string, got %T", i, e)
			return nil
		}
		out = append(out, s)
	}
	return out
}

func (a *args) dict(key string) map[string]any {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		a.fail(key, "want a mapping, got %T", v)
	}
	return m
}

// envList reads cmd's env: a mapping or, as Salt also allows, a list of
// one-key mappings. Keys are sorted so the child's environment is stable.
func (a *args) envList(key string) []string {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	var maps []map[string]any
	switch x := v.(type) {
	case map[string]any:
		maps = append(maps, x)
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				a.fail(key, "item %d: want a mapping NAME: value, got %T", i, e)
				return nil
			}
			maps = append(maps, m)
		}
	default:
		a.fail(key, "want a mapping or a list of mappings, got %T", v)
		return nil
	}
	var out []string
	for _, m := range maps {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				a.fail(key, "bad variable name %q", k)
				return nil
			}
			s, ok := scalar(m[k])
			if !ok {
				a.fail(key, "%s: want a string value, got %T", k, m[k])
				return nil
			}
			out = append(out, k+"="+s)
		}
	}
	return out
}
