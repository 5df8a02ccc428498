package registry

import (
	"math/bits"
	"slices"
	"sort"
	"unique"

	"github.com/hashicorp/go-memdb"

	"github.com/brine-cm/brine/pkg/target"
)

// grainIndex maps each flattened grain row (path, value) to the set of
// minions having it. It replaced a go-memdb grains table whose three radix
// trees cost ~180 KiB per minion with Salt-like core grains (173 rows each,
// cpu_flags alone 130): measured with brine-bench, see docs/BENCHMARKS.md.
//
// Minions are numbered by slot; a row's set is a sorted slot list while
// small and a bitmap once large, so a row most minions share (os:Debian)
// costs one bit per minion and a row unique to one minion a few bytes.
type grainIndex struct {
	slot map[string]uint32 // minion id -> slot
	ids  []string          // slot -> minion id; "" when free
	free []uint32
	rows map[string]*rowSet // pathValueKey -> minions having the row
}

type rowSet struct {
	all   slotSet
	exact slotSet // the minions whose row is exact (see target.FlattenGrains)
}

func newGrainIndex() *grainIndex {
	return &grainIndex{slot: map[string]uint32{}, rows: map[string]*rowSet{}}
}

func (ix *grainIndex) slotOf(id string) uint32 {
	if s, ok := ix.slot[id]; ok {
		return s
	}
	var s uint32
	if n := len(ix.free); n > 0 {
		s = ix.free[n-1]
		ix.free = ix.free[:n-1]
		ix.ids[s] = id
	} else {
		s = uint32(len(ix.ids))
		ix.ids = append(ix.ids, id)
	}
	ix.slot[id] = s
	return s
}

// add indexes a minion's grains; remove must have been called for its
// previous grains.
func (ix *grainIndex) add(id string, grains map[string]any) {
	if len(grains) == 0 {
		return
	}
	s := ix.slotOf(id)
	target.FlattenGrains(grains, func(path, value string, exact bool) {
		k := string(pathValueKey(path, value))
		rs := ix.rows[k]
		if rs == nil {
			rs = &rowSet{}
			ix.rows[k] = rs
		}
		rs.all.add(s)
		if exact {
			rs.exact.add(s)
		}
	})
}

// remove unindexes grains a minion had; the slot is freed.
func (ix *grainIndex) remove(id string, grains map[string]any) {
	s, ok := ix.slot[id]
	if !ok {
		return
	}
	target.FlattenGrains(grains, func(path, value string, _ bool) {
		k := string(pathValueKey(path, value))
		if rs := ix.rows[k]; rs != nil {
			rs.all.remove(s)
			rs.exact.remove(s)
			if rs.all.empty() {
				delete(ix.rows, k)
			}
		}
	})
	delete(ix.slot, id)
	ix.ids[s] = ""
	ix.free = append(ix.free, s)
}

// lookup returns the rows' minions sorted by id, as target.Index wants.
func (ix *grainIndex) lookup(path, value string) []target.GrainRow {
	rs := ix.rows[string(pathValueKey(path, value))]
	if rs == nil {
		return nil
	}
	out := make([]target.GrainRow, 0, rs.all.len())
	rs.all.each(func(s uint32) {
		out = append(out, target.GrainRow{ID: ix.ids[s], Exact: rs.exact.has(s)})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// slotSet is a set of small integers: a sorted list up to smallMax
// members, a bitmap beyond.
type slotSet struct {
	small []uint32
	bits  []uint64
	n     int
}

// smallMax is where a list (4 bytes a member) grows past a bitmap of a
// few thousand minions.
const smallMax = 128

func (s *slotSet) len() int    { return s.n }
func (s *slotSet) empty() bool { return s.n == 0 }

func (s *slotSet) has(x uint32) bool {
	if s.bits != nil {
		w := int(x / 64)
		return w < len(s.bits) && s.bits[w]&(1<<(x%64)) != 0
	}
	_, ok := slices.BinarySearch(s.small, x)
	return ok
}

func (s *slotSet) add(x uint32) {
	if s.bits == nil {
		i, ok := slices.BinarySearch(s.small, x)
		if ok {
			return
		}
		if len(s.small) < smallMax {
			s.small = slices.Insert(s.small, i, x)
			s.n++
			return
		}
		for _, y := range s.small {
			s.setBit(y)
		}
		s.small = nil
	}
	if !s.has(x) {
		s.setBit(x)
		s.n++
	}
}

func (s *slotSet) setBit(x uint32) {
	w := int(x / 64)
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, w+1-len(s.bits))...)
	}
	s.bits[w] |= 1 << (x % 64)
}

func (s *slotSet) remove(x uint32) {
	if !s.has(x) {
		return
	}
	s.n--
	if s.bits != nil {
		s.bits[x/64] &^= 1 << (x % 64)
		return
	}
	i, _ := slices.BinarySearch(s.small, x)
	s.small = slices.Delete(s.small, i, i+1)
	if len(s.small) == 0 {
		s.small = nil
	}
}

func (s *slotSet) each(fn func(uint32)) {
	if s.bits == nil {
		for _, x := range s.small {
			fn(x)
		}
		return
	}
	for w, word := range s.bits {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			fn(uint32(w*64 + b))
			word &= word - 1
		}
	}
}

// intern returns a copy of JSON-shaped grains whose strings are shared
// with every other minion's equal strings. Ten thousand minions of one
// fleet mostly report the same os, kernel, cpu_flags and paths; without
// sharing each kept its own copy of every string.
func intern(v any) any {
	switch x := v.(type) {
	case string:
		return unique.Make(x).Value()
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[unique.Make(k).Value()] = intern(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = intern(e)
		}
		return l
	}
	return v
}

// txnIndex answers target.Index from one read snapshot of the minions
// table and the grain index (read-locked by the caller).
type txnIndex struct {
	txn *memdb.Txn
	gix *grainIndex
	err error
}

func (t *txnIndex) GrainRows(path, value string, fn func(target.GrainRow)) {
	for _, r := range t.gix.lookup(path, value) {
		fn(r)
	}
}

func (t *txnIndex) IDsWithPrefix(prefix string) []string {
	it, err := t.txn.Get(tableMinions, indexID+"_prefix", prefix)
	if err != nil {
		t.err = err
		return nil
	}
	var out []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Minion).ID)
	}
	return out
}
