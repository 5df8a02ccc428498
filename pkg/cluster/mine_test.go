package cluster

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/mine"
)

func openMine(t *testing.T, n *Node) *MineStore {
	t.Helper()
	s, err := OpenMineStore(tctx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestMineStoreMatchesMemStore applies the same updates to the
// single-master MemStore and to the cluster store and compares every
// answer (times aside).
func TestMineStoreMatchesMemStore(t *testing.T) {
	ctx := tctx(t)
	ref, err := mine.NewMemStore("")
	if err != nil {
		t.Fatal(err)
	}
	cs := openMine(t, shared[0])
	other := openMine(t, shared[2])
	p := "mdiff-"
	type put struct {
		id      string
		data    map[string]any
		removed []string
		replace bool
	}
	steps := []put{
		{p + "web1", map[string]any{"network.ip_addrs": []any{"10.0.0.1"}, "grains.item": map[string]any{"os": "Debian"}}, nil, true},
		{p + "web1", map[string]any{"network.ip_addrs": []any{"10.0.0.1"}}, nil, false}, // no change
		{p + "web1", map[string]any{"network.ip_addrs": []string{"10.0.0.2"}}, nil, false},
		{p + "web2", map[string]any{"network.ip_addrs": mine.Encode([]any{"10.0.0.3"}, "db*", "")}, nil, true},
		{p + "web2", map[string]any{"network.ip_addrs": mine.Encode([]any{"10.0.0.3"}, "web*", "glob")}, nil, false}, // ACL change only
		{p + "web1", map[string]any{"x": 1}, []string{"grains.item", "x", "absent"}, false},                          // data wins over removed
		{p + "web1", map[string]any{"y": true}, nil, true},                                                           // replace drops the rest
		{p + "web2", nil, []string{"network.ip_addrs"}, false},
	}
	for i, st := range steps {
		a, errA := ref.Put(ctx, st.id, st.data, st.removed, st.replace)
		b, errB := cs.Put(ctx, st.id, st.data, st.removed, st.replace)
		if errA != nil || errB != nil || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("step %d put %s: mem %v %v, cluster %v %v", i, st.id, a, errA, b, errB)
		}
		for _, fn := range []string{"network.ip_addrs", "grains.item", "x", "y"} {
			ids := []string{p + "web1", p + "web2", p + "nobody"}
			ga, _ := ref.Get(ctx, ids, fn)
			gb, _ := cs.Get(ctx, ids, fn)
			if jsonString(ga) != jsonString(gb) {
				t.Fatalf("step %d get %s: mem %s, cluster %s", i, fn, jsonString(ga), jsonString(gb))
			}
			ea, _ := ref.GetEntries(ctx, ids, fn)
			eb, _ := cs.GetEntries(ctx, ids, fn)
			for id := range ea {
				ea[id] = mine.Entry{MinionID: ea[id].MinionID, Function: ea[id].Function, Value: ea[id].Value, AllowTgt: ea[id].AllowTgt, AllowTgtType: ea[id].AllowTgtType}
			}
			for id := range eb {
				eb[id] = mine.Entry{MinionID: eb[id].MinionID, Function: eb[id].Function, Value: eb[id].Value, AllowTgt: eb[id].AllowTgt, AllowTgtType: eb[id].AllowTgtType}
			}
			if jsonString(ea) != jsonString(eb) {
				t.Fatalf("step %d entries %s: mem %s, cluster %s", i, fn, jsonString(ea), jsonString(eb))
			}
		}
		for _, id := range []string{p + "web1", p + "web2"} {
			ea, _ := ref.Entries(ctx, id)
			eb, _ := cs.Entries(ctx, id)
			if len(ea) != len(eb) {
				t.Fatalf("step %d entries of %s: mem %d, cluster %d", i, id, len(ea), len(eb))
			}
			for k := range ea {
				if ea[k].Function != eb[k].Function || !reflect.DeepEqual(ea[k].Value, eb[k].Value) {
					t.Fatalf("step %d entries of %s: mem %v, cluster %v", i, id, ea, eb)
				}
			}
		}
	}
	// Another master sees the same mine.
	eventually(t, "master C sees web1's mine", 5*time.Second, func() bool {
		g, _ := other.Get(ctx, []string{p + "web1"}, "y")
		return g[p+"web1"] == true
	})
	// Delete one function, then all; mine.flush semantics.
	for _, s := range []mine.Store{ref, cs} {
		if err := s.Delete(ctx, p+"web1", "y"); err != nil {
			t.Fatal(err)
		}
	}
	ea, _ := ref.Entries(ctx, p+"web1")
	eb, _ := cs.Entries(ctx, p+"web1")
	if len(ea) != 0 || len(eb) != 0 {
		t.Fatalf("after delete: mem %v, cluster %v", ea, eb)
	}
	eventually(t, "master C sees the flush", 5*time.Second, func() bool {
		e, _ := other.Entries(ctx, p+"web1")
		return len(e) == 0
	})
}

// TestMineExpireOnce: masters expire concurrently; each stale minion is
// reported by exactly one, and a minion that reported again is kept.
func TestMineExpireOnce(t *testing.T) {
	ctx := tctx(t)
	a, b := openMine(t, shared[0]), openMine(t, shared[1])
	past := time.Now().Add(-time.Hour)
	a.now = func() time.Time { return past }
	for _, id := range []string{"exp-old1", "exp-old2", "exp-fresh"} {
		if _, err := a.Put(ctx, id, map[string]any{"f": id}, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	a.now = time.Now
	if _, err := a.Put(ctx, "exp-fresh", map[string]any{"f": "again"}, nil, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees the puts", 5*time.Second, func() bool {
		e, _ := b.Entries(ctx, "exp-fresh")
		return len(e) == 1 && e[0].Value == "again"
	})
	cutoff := time.Now().Add(-time.Minute)
	type res struct {
		ids []string
		err error
	}
	ch := make(chan res, 2)
	for _, s := range []*MineStore{a, b} {
		go func() { ids, err := s.Expire(ctx, cutoff); ch <- res{ids, err} }()
	}
	got := map[string]int{}
	for i := 0; i < 2; i++ {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, id := range r.ids {
			if id == "exp-old1" || id == "exp-old2" || id == "exp-fresh" {
				got[id]++
			}
		}
	}
	if got["exp-old1"] != 1 || got["exp-old2"] != 1 || got["exp-fresh"] != 0 {
		t.Fatalf("expired: %v", got)
	}
}
