package mine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Resolver turns a target expression into minion ids. The master passes
// its registry (pkg/registry); tgtType is Salt's: glob, list, grain, pcre…
type Resolver interface {
	Select(expr string, tgtType string) ([]string, error)
}

// ACL reports whether requester matches a publishing minion's allow_tgt
// (of type allowTgtType). It is asked only for entries that carry one.
type ACL func(requester, allowTgt, allowTgtType string) bool

// ResolverACL is Salt's minion-side ACL: the requester may read an entry
// when the entry's allow_tgt, resolved like any target, includes it.
func ResolverACL(r Resolver) ACL {
	return func(requester, allowTgt, allowTgtType string) bool {
		ids, err := r.Select(allowTgt, allowTgtType)
		if err != nil {
			return false // an allow_tgt that does not resolve admits nobody
		}
		for _, id := range ids {
			if id == requester {
				return true
			}
		}
		return false
	}
}

// entryGetter is what Get needs from a store to apply allow_tgt in one
// pass; stores without it are read minion by minion through Entries.
type entryGetter interface {
	GetEntries(ctx context.Context, ids []string, function string) (map[string]Entry, error)
}

// Get is mine.get as brinectl, minions and the renderer call it: resolve
// tgt, read fun from those minions, and drop entries whose allow_tgt the
// requester does not match. requester "" is the operator and bypasses the
// ACL; with a requester and a nil allowed, restricted entries are denied.
func Get(ctx context.Context, store Store, resolver Resolver, allowed ACL, requester, tgt, fun, tgtType string) (map[string]any, error) {
	if fun == "" {
		return nil, fmt.Errorf("mine.get %q: no function given", tgt)
	}
	if tgtType == "" {
		tgtType = "glob"
	}
	ids, err := resolver.Select(tgt, tgtType)
	if err != nil {
		return nil, fmt.Errorf("mine.get: target %q (%s): %w", tgt, tgtType, err)
	}
	if requester == "" {
		out, err := store.Get(ctx, ids, fun)
		if err != nil {
			return nil, fmt.Errorf("mine.get %s: %w", fun, err)
		}
		return out, nil
	}
	verdict := map[[2]string]bool{} // one allow_tgt resolves once per call
	out := make(map[string]any, min(len(ids), 1<<16))
	visit := func(e *Entry) {
		if e.AllowTgt != "" {
			k := [2]string{e.AllowTgt, e.AllowTgtType}
			ok, seen := verdict[k]
			if !seen {
				ok = allowed != nil && allowed(requester, e.AllowTgt, e.AllowTgtType)
				verdict[k] = ok
			}
			if !ok {
				return
			}
		}
		out[e.MinionID] = e.Value
	}
	if err := visitEntries(ctx, store, ids, fun, visit); err != nil {
		return nil, fmt.Errorf("mine.get %s: %w", fun, err)
	}
	return out, nil
}

// entryVisitor is MemStore's copy-free read path.
type entryVisitor interface {
	lookup(ctx context.Context, ws memdb.WatchSet, ids []string, function string, found func(*Entry)) error
}

func visitEntries(ctx context.Context, store Store, ids []string, fun string, visit func(*Entry)) error {
	switch st := store.(type) {
	case entryVisitor:
		return st.lookup(ctx, nil, ids, fun, visit)
	case entryGetter:
		es, err := st.GetEntries(ctx, ids, fun)
		if err != nil {
			return err
		}
		for _, e := range es {
			visit(&e)
		}
		return nil
	}
	for _, id := range ids {
		es, err := store.Entries(ctx, id)
		if err != nil {
			return err
		}
		for i := range es {
			if es[i].Function == fun {
				visit(&es[i])
			}
		}
	}
	return nil
}

// GetRequest is a parsed mine.get call.
type GetRequest struct {
	Tgt           string
	Funs          []string // more than one: the result is keyed by function first
	TgtType       string
	ExcludeMinion bool // leave the requester out of the result
}

// ParseGetArgs reads Salt's mine.get(tgt, fun, tgt_type='glob',
// exclude_minion=False) from positional args and kwargs. The old
// expr_form is accepted for tgt_type; fun may be a list or a
// comma-separated string, as in Salt.
func ParseGetArgs(args []any, kwargs map[string]any) (GetRequest, error) {
	names := []string{"tgt", "fun", "tgt_type", "exclude_minion"}
	if len(args) > len(names) {
		return GetRequest{}, fmt.Errorf("mine.get: too many arguments (%d, at most %d)", len(args), len(names))
	}
	vals := map[string]any{}
	for i, a := range args {
		vals[names[i]] = a
	}
	for k, v := range kwargs {
		if strings.HasPrefix(k, "__") {
			continue // Salt's injected __pub_* keys
		}
		key := k
		if k == "expr_form" {
			key = "tgt_type"
		}
		switch key {
		case "tgt", "fun", "tgt_type", "exclude_minion":
		default:
			return GetRequest{}, fmt.Errorf("mine.get: unknown argument %q", k)
		}
		if _, dup := vals[key]; dup {
			return GetRequest{}, fmt.Errorf("mine.get: argument %q given twice", k)
		}
		vals[key] = v
	}
	var r GetRequest
	var ok bool
	if r.Tgt, ok = vals["tgt"].(string); !ok || r.Tgt == "" {
		return r, fmt.Errorf("mine.get: tgt must be a non-empty string, got %T", vals["tgt"])
	}
	switch f := vals["fun"].(type) {
	case string:
		for _, p := range strings.Split(f, ",") {
			if p = strings.TrimSpace(p); p != "" {
				r.Funs = append(r.Funs, p)
			}
		}
	case []any:
		for i, p := range f {
			s, ok := p.(string)
			if !ok || s == "" {
				return r, fmt.Errorf("mine.get: fun[%d] must be a non-empty string, got %T", i, p)
			}
			r.Funs = append(r.Funs, s)
		}
	case []string:
		r.Funs = append(r.Funs, f...)
	}
	if len(r.Funs) == 0 {
		return r, fmt.Errorf("mine.get: fun must name at least one function")
	}
	if v, present := vals["tgt_type"]; present && v != nil {
		if r.TgtType, ok = v.(string); !ok {
			return r, fmt.Errorf("mine.get: tgt_type must be a string, got %T", v)
		}
	}
	if r.TgtType == "" {
		r.TgtType = "glob"
	}
	switch v := vals["exclude_minion"].(type) {
	case nil:
	case bool:
		r.ExcludeMinion = v
	case string:
		r.ExcludeMinion = strings.EqualFold(v, "true") || v == "1"
	default:
		return r, fmt.Errorf("mine.get: exclude_minion must be a boolean, got %T", v)
	}
	return r, nil
}

// Run performs the request for requester ("" = operator). One function
// returns {minion: value}; several return {function: {minion: value}}.
func (r GetRequest) Run(ctx context.Context, store Store, resolver Resolver, allowed ACL, requester string) (map[string]any, error) {
	funs := append([]string(nil), r.Funs...)
	sort.Strings(funs)
	multi := map[string]any{}
	for _, fun := range funs {
		got, err := Get(ctx, store, resolver, allowed, requester, r.Tgt, fun, r.TgtType)
		if err != nil {
			return nil, err
		}
		if r.ExcludeMinion && requester != "" {
			delete(got, requester)
		}
		if len(r.Funs) == 1 {
			return got, nil
		}
		multi[fun] = got
	}
	return multi, nil
}
