package mine

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzMineUpdate feeds an authenticated minion's MineUpdate (data as the
// wire decodes it, removed names, replace flag) into the master's store.
// Whatever the minion sends, it must never panic, never change another
// minion's entries, and what it stored must read back with the ACL that
// Decode says it asked for.
func FuzzMineUpdate(f *testing.F) {
	f.Add(`{"network.ip_addrs":["10.0.0.1"]}`, "", false)
	f.Add(`{"x":{"__mine_value__":[1,2],"__allow_tgt__":"web*","__allow_tgt_type__":"glob"}}`, "", true)
	f.Add(`{"x":{"__mine_value__":null,"__allow_tgt__":""}}`, "grains.items", false)
	f.Add(`{"x":{"__mine_value__":1,"other":2}}`, "x", true)
	f.Add(`{"":1}`, "", false)
	f.Add(`{"a":{"__allow_tgt__":"*"}}`, "network.ip_addrs", false)
	f.Add(`{"{{ 7*7 }}":"{% raw %}"}`, "../victim", true)

	s, err := NewMemStore(filepath.Join(f.TempDir(), "mine.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	victim := map[string]any{"network.ip_addrs": []any{"10.0.0.9"}}
	if _, err := s.Put(ctx, "victim", victim, nil, true); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, dataJSON, removed string, replace bool) {
		var data map[string]any
		if json.Unmarshal([]byte(dataJSON), &data) != nil {
			return
		}
		var rm []string
		if removed != "" {
			rm = []string{removed}
		}
		_, err := s.Put(ctx, "attacker", data, rm, replace)
		got, gerr := s.Get(ctx, []string{"victim"}, "network.ip_addrs")
		if gerr != nil || !reflect.DeepEqual(got["victim"], victim["network.ip_addrs"]) {
			t.Fatalf("victim's mine changed: %v %v", got, gerr)
		}
		if err != nil {
			return
		}
		entries, err := s.Entries(ctx, "attacker")
		if err != nil {
			t.Fatal(err)
		}
		byFn := map[string]Entry{}
		for _, e := range entries {
			if e.MinionID != "attacker" {
				t.Fatalf("Entries(attacker) returned %s's entry", e.MinionID)
			}
			byFn[e.Function] = e
		}
		for fn, raw := range data {
			e, ok := byFn[fn]
			if !ok && fn == removed && !replace {
				continue // sent and removed in one update: either order is defensible
			}
			if !ok {
				t.Fatalf("function %q sent but not stored", fn)
			}
			_, tgt, typ := Decode(raw)
			if e.AllowTgt != tgt || e.AllowTgtType != typ {
				t.Fatalf("function %q stored with ACL %q/%q, sent %q/%q", fn, e.AllowTgt, e.AllowTgtType, tgt, typ)
			}
		}
	})
}
