package target_test

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/target"
	"github.com/brine-cm/brine/pkg/target/targettest"
)

// mapIndex is the simplest store honouring the Index contract: the rows of
// FlattenGrains in a map.
type mapIndex struct {
	ids     []string
	rows    map[[2]string][]target.GrainRow
	lookups int
	scans   int
}

func newMapIndex(minions map[string]map[string]any) *mapIndex {
	ix := &mapIndex{rows: map[[2]string][]target.GrainRow{}}
	for id := range minions {
		ix.ids = append(ix.ids, id)
	}
	sort.Strings(ix.ids)
	for _, id := range ix.ids {
		target.FlattenGrains(minions[id], func(path, value string, exact bool) {
			k := [2]string{path, value}
			ix.rows[k] = append(ix.rows[k], target.GrainRow{ID: id, Exact: exact})
		})
	}
	return ix
}

func (ix *mapIndex) GrainRows(path, value string, fn func(target.GrainRow)) {
	ix.lookups++
	for _, r := range ix.rows[[2]string{path, value}] {
		fn(r)
	}
}

func (ix *mapIndex) IDsWithPrefix(prefix string) []string {
	ix.scans++
	var out []string
	for _, id := range ix.ids {
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	return out
}

// TestCandidatesProperty is the invariant the registry relies on, checked
// on random minions and expressions: every matching minion is a candidate
// (when the expression is bounded) and every Sure candidate matches.
func TestCandidatesProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	minions := map[string]map[string]any{}
	for i := range 300 {
		minions[targettest.ID(r, i)] = targettest.Grains(r)
	}
	ix := newMapIndex(minions)
	bounded, sureHits := 0, 0
	for range 3000 {
		expr, typ := targettest.Expr(r)
		m, err := target.Compile(expr, typ)
		if err != nil {
			t.Fatalf("Compile(%q, %s): %v", expr, typ, err)
		}
		cands, ok := m.Candidates(ix)
		if !ok {
			continue
		}
		bounded++
		if !slices.IsSortedFunc(cands, func(a, b target.Candidate) int { return strings.Compare(a.ID, b.ID) }) {
			t.Fatalf("%s %q: candidates not sorted", typ, expr)
		}
		byID := map[string]target.Candidate{}
		for _, c := range cands {
			byID[c.ID] = c
		}
		for _, id := range ix.ids {
			match := m.Match(id, minions[id])
			c, isCand := byID[id]
			if match && !isCand {
				t.Errorf("%s %q matches %s but it is not a candidate", typ, expr, id)
			}
			if c.Sure && !match {
				t.Errorf("%s %q: %s is a Sure candidate but does not match (grains %v)", typ, expr, id, minions[id])
			}
			if c.Sure {
				sureHits++
			}
		}
		for _, c := range cands {
			if _, exists := minions[c.ID]; c.Known && !exists {
				t.Errorf("%s %q: %s is Known but no such minion", typ, expr, c.ID)
			}
		}
	}
	// Guard against a generator that never exercises the index.
	if bounded < 1000 || sureHits < 10000 {
		t.Errorf("weak test: %d bounded expressions, %d sure hits", bounded, sureHits)
	}
	t.Logf("%d bounded expressions, %d sure hits", bounded, sureHits)
}

func TestCandidatesUseIndex(t *testing.T) {
	minions := map[string]map[string]any{
		"web-1": {"roles": []any{"web"}, "env": "prod"},
		"web-2": {"roles": []any{"db"}, "env": "prod"},
		"db-1":  {"roles": "web", "env": "dev"},
	}
	tests := []struct {
		typ            target.Type
		expr           string
		bounded        bool
		ids            []string // candidates
		sure           []string
		lookups, scans int
	}{
		{target.Grain, "roles:web", true, []string{"db-1", "web-1"}, []string{"db-1", "web-1"}, 1, 0},
		{target.Grain, "ROLES:web", true, nil, nil, 1, 0},
		{target.Grain, "roles:we*", false, nil, nil, 0, 0},
		{target.Compound, "G@roles:web and G@env:prod", true, []string{"web-1"}, []string{"web-1"}, 2, 0},
		// the id glob filters the index hits instead of scanning ids
		{target.Compound, "G@roles:web and web*", true, []string{"web-1"}, []string{"web-1"}, 1, 0},
		{target.Compound, "web* and not db* and L@web-1,web-2,db-1", true, []string{"web-1", "web-2"}, []string{"web-1", "web-2"}, 0, 0},
		{target.Compound, "web* and E@.*2", true, []string{"web-2"}, []string{"web-2"}, 0, 1},
		{target.Compound, "web* and not G@env:dev", true, []string{"web-1", "web-2"}, nil, 0, 1},
		{target.Compound, "G@roles:web and G@env:prod or L@a,b", true, []string{"a", "b", "web-1"}, []string{"a", "b", "web-1"}, 2, 0},
		{target.Compound, "G@roles:web or G@env:p*", false, nil, nil, 0, 0},
		{target.Compound, "not G@roles:web", false, nil, nil, 0, 0},
		{target.Glob, "web*", true, []string{"web-1", "web-2"}, []string{"web-1", "web-2"}, 0, 1},
		{target.PCRE, "web-[12]", true, []string{"web-1", "web-2"}, nil, 0, 1},
		{target.PCRE, "web", true, []string{"web-1", "web-2"}, []string{"web-1", "web-2"}, 0, 1},
		{target.Grain, "ip:1:x", false, nil, nil, 0, 0}, // numeric key part: Salt may index a list
	}
	for _, tt := range tests {
		ix := newMapIndex(minions)
		m, err := target.Compile(tt.expr, tt.typ)
		if err != nil {
			t.Fatal(err)
		}
		cands, ok := m.Candidates(ix)
		var ids, sure []string
		for _, c := range cands {
			ids = append(ids, c.ID)
			if c.Sure {
				sure = append(sure, c.ID)
			}
		}
		if ok != tt.bounded || !slices.Equal(ids, tt.ids) || !slices.Equal(sure, tt.sure) || ix.lookups != tt.lookups || ix.scans != tt.scans {
			t.Errorf("%s %q: bounded=%v ids=%v sure=%v lookups=%d scans=%d; want %v %v %v %d %d",
				tt.typ, tt.expr, ok, ids, sure, ix.lookups, ix.scans, tt.bounded, tt.ids, tt.sure, tt.lookups, tt.scans)
		}
	}
}

func TestFlattenGrains(t *testing.T) {
	g := map[string]any{
		"os":            "Debian",
		"roles":         []any{"web", "Web", "db"},
		"num_cpus":      float64(4),
		"ip_interfaces": map[string]any{"eth0": []any{"198.18.0.5"}},
		"disks":         []any{map[string]any{"name": "sda"}},
		"a:b":           "c",
		"matrix":        []any{[]any{"x"}},
	}
	var got []string
	target.FlattenGrains(g, func(path, value string, exact bool) {
		e := "~"
		if exact {
			e = "="
		}
		got = append(got, path+" "+e+" "+value)
	})
	sort.Strings(got)
	want := []string{
		"a:b ~ c",
		"disks ~ name",
		"disks:name ~ sda",
		"ip_interfaces ~ eth0",
		"ip_interfaces:eth0 = 198.18.0.5",
		"num_cpus = 4",
		"os = debian",
		"roles = db",
		"roles = web",
	}
	if !slices.Equal(got, want) {
		t.Errorf("FlattenGrains:\n got %q\nwant %q", got, want)
	}
}
