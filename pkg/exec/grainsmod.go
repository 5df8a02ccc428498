package exec

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

func registerGrains(r *Registry) {
	r.RegisterBound("grains.items", Doc{
		Summary: "Return all grains.",
		Returns: "dict",
	}, func(_ context.Context, env *Env, _ *Args) (any, error) { return env.grains(), nil })

	r.RegisterBound("grains.ls", Doc{
		Summary: "Return the names of all grains, sorted.",
		Returns: "list",
	}, func(_ context.Context, env *Env, _ *Args) (any, error) {
		g := env.grains()
		out := make([]string, 0, len(g))
		for k := range g {
			out = append(out, k)
		}
		sort.Strings(out)
		return toAnyList(out), nil
	})

	r.RegisterBound("grains.get", Doc{
		Summary: "Return one grain; nested values are reached with the delimiter (`ip_interfaces:eth0:0`), list items by index.",
		Args: []ArgDoc{
			{Name: "key", Type: Str, Required: true, Doc: "grain name or delimited path"},
			{Name: "default", Type: Any, Default: "", Doc: "returned when the grain is missing"},
			{Name: "delimiter", Type: Str, Default: ":", Doc: "path separator"},
		},
		Returns: "the value or default",
		Example: "brinectl '*' grains.get ip_interfaces:eth0",
	}, func(_ context.Context, env *Env, a *Args) (any, error) {
		delim := a.Str("delimiter")
		if delim == "" {
			return nil, badArg("grains.get", "delimiter", "must not be empty")
		}
		if v, ok := traverse(env.grains(), a.Str("key"), delim); ok {
			return v, nil
		}
		return a.Value("default"), nil
	})

	r.RegisterBound("grains.item", Doc{
		Summary: "Return several grains as a dict keyed by the names asked for.",
		Args: []ArgDoc{
			{Name: "default", Type: Any, Default: "", KeywordOnly: true, Doc: "value for missing grains"},
			{Name: "delimiter", Type: Str, Default: ":", KeywordOnly: true, Doc: "path separator"},
		},
		Varargs: "keys",
		Returns: "dict",
		Example: "brinectl '*' grains.item os osrelease",
	}, func(_ context.Context, env *Env, a *Args) (any, error) {
		delim := a.Str("delimiter")
		if delim == "" {
			return nil, badArg("grains.item", "delimiter", "must not be empty")
		}
		g := env.grains()
		out := map[string]any{}
		for i, k := range a.Rest {
			key, ok := k.(string)
			if !ok {
				return nil, badArg("grains.item", "keys", "key %d: expected a string, got %s", i, describe(k))
			}
			if v, ok := traverse(g, key, delim); ok {
				out[key] = v
			} else {
				out[key] = a.Value("default")
			}
		}
		return out, nil
	})

	r.RegisterBound("grains.filter_by", Doc{
		Summary: "Pick the entry of lookup_dict whose key matches a grain's value (glob patterns allowed, exact keys win, then patterns in sorted order), as map.jinja files do. The base entry is merged under the pick and merge over it.",
		Args: []ArgDoc{
			{Name: "lookup_dict", Type: Dict, Required: true, Doc: "grain value (or pattern) -> data"},
			{Name: "grain", Type: Str, Default: "os_family", Doc: "grain to look at (delimited path allowed)"},
			{Name: "merge", Type: Dict, Doc: "dict merged over the result"},
			{Name: "default", Type: Str, Default: "default", Doc: "key used when nothing matches"},
			{Name: "base", Type: Str, Doc: "key whose value is the starting point"},
		},
		Returns: "the chosen value, or None",
		Example: "{% set pkg = salt['grains.filter_by']({'Debian': {'web': 'apache2'}, 'RedHat': {'web': 'httpd'}}) %}",
	}, func(_ context.Context, env *Env, a *Args) (any, error) {
		return filterBy(a.Dict("lookup_dict"), a.Str("grain"), env.grains(), a.Dict("merge"), a.Str("default"), a.Str("base"))
	})
}

// traverse walks nested dicts and lists the way Salt's
// traverse_dict_and_list does: dict keys by name, list items by (possibly
// negative) index, and a non-numeric part on a list looks inside the
// list's dicts.
func traverse(data any, key, delim string) (any, bool) {
	ptr := data
	for _, part := range strings.Split(key, delim) {
		switch cur := ptr.(type) {
		case map[string]any:
			v, ok := cur[part]
			if !ok {
				return nil, false
			}
			ptr = v
		case []any:
			if idx, err := strconv.Atoi(part); err == nil {
				if idx < 0 {
					idx += len(cur)
				}
				if idx < 0 || idx >= len(cur) {
					return nil, false
				}
				ptr = cur[idx]
				continue
			}
			found := false
			for _, e := range cur {
				if m, ok := e.(map[string]any); ok {
					if v, ok := m[part]; ok {
						ptr, found = v, true
						break
					}
				}
			}
			if !found {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return ptr, true
}

func filterBy(lookup map[string]any, grain string, grains map[string]any, merge map[string]any, dflt, base string) (any, error) {
	val, _ := traverse(grains, grain, ":")
	var candidates []string
	if l, ok := val.([]any); ok {
		for _, e := range l {
			candidates = append(candidates, fmt.Sprint(e))
		}
	} else if val != nil {
		candidates = []string{fmt.Sprint(val)}
	}
	keys := make([]string, 0, len(lookup))
	for k := range lookup {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ret any
	found := false
	for _, c := range candidates {
		if v, ok := lookup[c]; ok {
			ret, found = v, true
			break
		}
		for _, k := range keys {
			if ok, _ := path.Match(k, c); ok {
				ret, found = lookup[k], true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		ret = lookup[dflt]
	}
	if base != "" {
		if bv, ok := lookup[base]; ok {
			if ret == nil {
				ret = deepCopyValue(bv)
			} else if bm, ok := bv.(map[string]any); ok {
				rm, ok := ret.(map[string]any)
				if !ok {
					return nil, badArg("grains.filter_by", "base", "the chosen value and the base value must both be dicts")
				}
				merged := deepCopyValue(bm).(map[string]any)
				mergeDeep(merged, rm)
				ret = merged
			}
		}
	}
	if merge != nil {
		if ret == nil {
			ret = deepCopyValue(merge)
		} else {
			rm, ok := ret.(map[string]any)
			if !ok {
				return nil, badArg("grains.filter_by", "merge", "the chosen value must be a dict to merge into")
			}
			out := deepCopyValue(rm).(map[string]any)
			mergeDeep(out, merge)
			ret = out
		}
	}
	return ret, nil
}

// mergeDeep is Salt's dictupdate.update: nested dicts merge, the rest of
// src replaces dst's value.
func mergeDeep(dst, src map[string]any) {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeDeep(dm, sm)
				continue
			}
		}
		dst[k] = deepCopyValue(sv)
	}
}

func deepCopyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopyValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}

func toAnyList(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}
