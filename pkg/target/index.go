package target

import (
	"sort"
	"strings"
)

// Index-assisted selection. A minion store that keeps the rows
// FlattenGrains produces, indexed by (path, value), can ask a Matcher for
// Candidates: a sorted superset of the minions it can match, computed from
// a few index lookups instead of evaluating every minion. The store then
// evaluates Match only on candidates that are not already Sure. The one
// invariant everything here rests on: for any grains, if Match is true then
// the minion is among the candidates, and if a candidate is Sure then Match
// is true.

// GrainRow is one index hit: a minion having a flattened (path, value) row.
type GrainRow struct {
	ID string
	// Exact is FlattenGrains' exact flag for the row.
	Exact bool
}

// Index is what a minion store offers to narrow a match.
type Index interface {
	// GrainRows calls fn for each minion having the row (path, value), in
	// id order, at most once per minion. (A callback rather than a slice:
	// at 10,000 minions the intermediate slices were half the cost.)
	GrainRows(path, value string, fn func(GrainRow))
	// IDsWithPrefix returns the ids of all known minions that start with
	// prefix, sorted.
	IDsWithPrefix(prefix string) []string
}

// Candidate is one minion id that may match.
type Candidate struct {
	ID string
	// Sure means Match is true for this id whatever its grains, as long as
	// the minion exists.
	Sure bool
	// Known means the id came from the store, so the minion exists.
	Known bool
}

// Candidates returns a sorted superset of the ids m matches, computed
// through ix. bounded is false when the expression cannot be narrowed (a
// regex on a grain, "not", an ipcidr...) and every minion must be checked.
func (m *Matcher) Candidates(ix Index) (cands []Candidate, bounded bool) {
	if m.root.cost() == costUnbounded {
		return nil, false
	}
	return m.root.candidates(ix)
}

// FlattenGrains calls emit once for every distinct (path, value) row that
// grain-equality targets are answered from:
//   - every scalar, and every scalar element of a list, as (path to it,
//     lower-cased ValueString);
//   - every key of a nested dict, as (path to the dict, lower-cased key),
//     because Salt's G@path:key matches when the dict has that key.
//
// Paths join dict keys with ':'; lists add nothing to the path (Salt
// searches a list for a dict holding the next key). Lists nested directly
// in lists are skipped: no grain target can reach into them except by a
// numeric index, and targets with numeric key parts are never answered
// from the index.
//
// exact is true when the row alone proves that G@path:value matches: the
// value is a scalar (or scalar list element) reached through dict keys
// only, none of which contains ':'. Other rows only make a minion a
// candidate.
func FlattenGrains(grains map[string]any, emit func(path, value string, exact bool)) {
	type key struct{ path, value string }
	seen := map[key]bool{}
	var order []key
	add := func(path, value string, exact bool) {
		k := key{path, strings.ToLower(value)}
		prev, ok := seen[k]
		if !ok {
			order = append(order, k)
		}
		seen[k] = prev || exact
	}
	var walk func(v any, path string, exact bool)
	walkDict := func(m map[string]any, path string, exact bool) {
		for k, v := range m {
			add(path, k, false)
			walk(v, path+":"+k, exact && !strings.Contains(k, ":"))
		}
	}
	walk = func(v any, path string, exact bool) {
		if m, ok := asMap(v); ok {
			walkDict(m, path, exact)
			return
		}
		if l, ok := asList(v); ok {
			for _, item := range l {
				if m, ok := asMap(item); ok {
					walkDict(m, path, false)
					continue
				}
				if s, ok := ValueString(item); ok {
					add(path, s, exact)
				}
			}
			return
		}
		if s, ok := ValueString(v); ok {
			add(path, s, exact)
		}
	}
	for k, v := range grains {
		walk(v, k, !strings.Contains(k, ":"))
	}
	for _, k := range order {
		emit(k.path, k.value, seen[k])
	}
}

func (n *globNode) cost() int {
	switch {
	case n.g.literal:
		return costExact
	case n.g.prefix != "":
		return costPrefix
	}
	return costUnbounded
}

func (n *globNode) candidates(ix Index) ([]Candidate, bool) {
	if n.g.literal {
		return []Candidate{{ID: n.g.prefix, Sure: true}}, true
	}
	if n.g.prefix == "" {
		return nil, false
	}
	// "web*" matches every id with the prefix; anything more must be checked.
	sure := len(n.g.toks) == 2 && n.g.toks[1].kind == gStar
	return prefixCandidates(ix, n.g.prefix, sure), true
}

func prefixCandidates(ix Index, prefix string, sure bool) []Candidate {
	ids := ix.IDsWithPrefix(prefix)
	out := make([]Candidate, len(ids))
	for i, id := range ids {
		out[i] = Candidate{ID: id, Sure: sure, Known: true}
	}
	return out
}

func (n *listNode) cost() int { return costExact }

func (n *listNode) candidates(Index) ([]Candidate, bool) {
	out := make([]Candidate, len(n.ids))
	for i, id := range n.ids {
		out[i] = Candidate{ID: id, Sure: true}
	}
	return out, true
}

func (n *pcreNode) cost() int {
	if p, _ := n.re.LiteralPrefix(); p != "" {
		return costPrefix
	}
	return costUnbounded
}

func (n *pcreNode) candidates(ix Index) ([]Candidate, bool) {
	p, _ := n.re.LiteralPrefix()
	if p == "" {
		return nil, false
	}
	// The anchored regex's prefix can be shorter than the raw one's
	// ("we(0)": "we" vs "we0"): only when both agree is every id with
	// the prefix a sure match.
	complete := n.literal && p == n.lit
	// re.match is anchored at the start only: a literal regex matches
	// every id it prefixes.
	return prefixCandidates(ix, p, complete), true
}

// indexable reports whether the grain leaf is an equality the index can
// answer: no glob characters, and no key part Salt would take as a list
// index.
func (n *grainNode) indexable() bool {
	g := n.leaf
	if g.regex || hasGlobMeta(g.expr) {
		return false
	}
	for _, p := range g.parts[:len(g.parts)-1] {
		if _, numeric := pythonInt(p); numeric {
			return false
		}
	}
	return true
}

func (n *grainNode) cost() int {
	if n.indexable() {
		return costIndexed
	}
	return costUnbounded
}

func (n *grainNode) candidates(ix Index) ([]Candidate, bool) {
	if !n.indexable() {
		return nil, false
	}
	var out []Candidate
	for i, s := range n.leaf.splits {
		// A key part holding ':' (possible with a custom delimiter) joins
		// into a path that other keys can produce too: a hit proves nothing.
		ambiguous := false
		for _, k := range s.keyParts {
			if strings.Contains(k, ":") {
				ambiguous = true
			}
		}
		var c []Candidate
		ix.GrainRows(strings.Join(s.keyParts, ":"), strings.ToLower(s.rest), func(r GrainRow) {
			c = append(c, Candidate{ID: r.ID, Sure: r.Exact && !ambiguous, Known: true})
		})
		if i == 0 {
			out = c
		} else {
			out = union(out, c)
		}
	}
	return out, true
}

func (n *cidrNode) cost() int                            { return costUnbounded }
func (n *cidrNode) candidates(Index) ([]Candidate, bool) { return nil, false }
func (n *notNode) cost() int                             { return costUnbounded }
func (n *notNode) candidates(Index) ([]Candidate, bool)  { return nil, false }

func (n *andNode) cost() int {
	c := costUnbounded
	for _, k := range n.kids {
		c = min(c, k.cost())
	}
	return c
}

func (n *andNode) candidates(ix Index) ([]Candidate, bool) {
	kids := append([]node(nil), n.kids...)
	sort.SliceStable(kids, func(i, j int) bool { return kids[i].cost() < kids[j].cost() })
	var out []Candidate
	var idFilters []node
	bounded, complete := false, true
	for _, k := range kids {
		c := k.cost()
		if c >= costPrefix && idOnly(k) {
			// Needs only the id: filter the candidates with it below,
			// which keeps them Sure, instead of scanning an id range.
			idFilters = append(idFilters, k)
			continue
		}
		// Once the set is bounded, checking the remaining operands on the
		// few candidates beats scanning an id range for them.
		if c == costUnbounded || (bounded && c >= costPrefix) {
			complete = false
			continue
		}
		kc, ok := k.candidates(ix)
		if !ok {
			complete = false
			continue
		}
		if !bounded {
			out, bounded = kc, true
		} else {
			out = intersect(out, kc)
		}
	}
	if !bounded {
		if len(idFilters) == 0 {
			return nil, false
		}
		// Only id operands: let the cheapest one bound the set.
		f := idFilters[0]
		kc, ok := f.candidates(ix)
		if !ok {
			return nil, false
		}
		out, bounded, idFilters = kc, true, idFilters[1:]
	}
	if len(idFilters) > 0 {
		kept := out[:0]
		for _, c := range out {
			if matchesID(idFilters, c.ID) {
				kept = append(kept, c)
			}
		}
		out = kept
	}
	if !complete {
		for i := range out {
			out[i].Sure = false
		}
	}
	return out, true
}

// idOnly reports whether n decides on the minion id alone.
func idOnly(n node) bool {
	switch x := n.(type) {
	case *globNode, *listNode, *pcreNode:
		return true
	case *notNode:
		return idOnly(x.kid)
	case *andNode:
		for _, k := range x.kids {
			if !idOnly(k) {
				return false
			}
		}
		return true
	case *orNode:
		for _, k := range x.kids {
			if !idOnly(k) {
				return false
			}
		}
		return true
	}
	return false
}

func matchesID(filters []node, id string) bool {
	for _, f := range filters {
		if !f.match(id, nil) {
			return false
		}
	}
	return true
}

func (n *orNode) cost() int {
	c := costExact
	for _, k := range n.kids {
		c = max(c, k.cost())
	}
	return c
}

func (n *orNode) candidates(ix Index) ([]Candidate, bool) {
	var out []Candidate
	for i, k := range n.kids {
		kc, ok := k.candidates(ix)
		if !ok {
			return nil, false
		}
		if i == 0 {
			out = kc
		} else {
			out = union(out, kc)
		}
	}
	return out, true
}

// intersect keeps ids in both sorted lists: sure only if sure on both
// sides, known if either side knows it.
func intersect(a, b []Candidate) []Candidate {
	out := a[:0:0]
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].ID < b[j].ID:
			i++
		case a[i].ID > b[j].ID:
			j++
		default:
			out = append(out, Candidate{ID: a[i].ID, Sure: a[i].Sure && b[j].Sure, Known: a[i].Known || b[j].Known})
			i++
			j++
		}
	}
	return out
}

// union merges two sorted lists: sure or known if either side says so.
func union(a, b []Candidate) []Candidate {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]Candidate, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].ID < b[j].ID:
			out = append(out, a[i])
			i++
		case a[i].ID > b[j].ID:
			out = append(out, b[j])
			j++
		default:
			out = append(out, Candidate{ID: a[i].ID, Sure: a[i].Sure || b[j].Sure, Known: a[i].Known || b[j].Known})
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

func sortStrings(s []string) { sort.Strings(s) }
