package mine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseGetArgs: any JSON-shaped args either parse to a complete
// request or fail with an error; nothing panics.
func FuzzParseGetArgs(f *testing.F) {
	f.Add(`["web*", "network.ip_addrs"]`, `{}`)
	f.Add(`["role:web", "a.b,c.d", "grain", true]`, `{}`)
	f.Add(`[]`, `{"tgt": "*", "fun": ["a.b"], "expr_form": "list"}`)
	f.Add(`["*"]`, `{"fun": 3}`)
	f.Add(`["*", "a.b"]`, `{"tgt_type": null, "exclude_minion": "True", "__pub_fun": "x"}`)
	f.Fuzz(func(t *testing.T, argsJSON, kwargsJSON string) {
		var args []any
		var kwargs map[string]any
		if json.Unmarshal([]byte(argsJSON), &args) != nil || json.Unmarshal([]byte(kwargsJSON), &kwargs) != nil {
			return
		}
		r, err := ParseGetArgs(args, kwargs)
		if err != nil {
			return
		}
		if r.Tgt == "" || r.TgtType == "" || len(r.Funs) == 0 {
			t.Fatalf("accepted an incomplete request %#v from %s %s", r, argsJSON, kwargsJSON)
		}
		for _, f := range r.Funs {
			if f == "" {
				t.Fatalf("empty function in %#v", r)
			}
		}
	})
}

// FuzzLoadFile: whatever is in the mine file, opening it either fails with
// an error or yields a store that writes and re-reads to the same content.
func FuzzLoadFile(f *testing.F) {
	f.Add(`{"version":1,"minions":{"m1":"2030-01-01T00:00:00Z"},"entries":[{"minion_id":"m1","function":"a.b","value":[1,"x"],"updated":"2030-01-01T00:00:00Z"}]}`)
	f.Add(`{"version":1,"entries":[{"minion_id":"m1","function":"a","value":null,"allow_tgt":"lb*","allow_tgt_type":"glob","updated":"2030-01-01T00:00:00Z"}]}`)
	f.Add(`{"version":1,"entries":[{"minion_id":"m1","function":"a"},{"minion_id":"m1","function":"a"}]}`)
	f.Add(`{"version":2}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		dir := t.TempDir()
		p := filepath.Join(dir, "mine.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := NewMemStore(p)
		if err != nil {
			return
		}
		before := dumpStore(t, s)
		s.gen.Add(1) // force a write of what was loaded
		if err := s.Close(); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		r, err := NewMemStore(p)
		if err != nil {
			t.Fatalf("reopening our own file: %v", err)
		}
		defer r.Close()
		if after := dumpStore(t, r); !reflect.DeepEqual(before, after) {
			t.Fatalf("reload changed the mine\nbefore %#v\nafter  %#v", before, after)
		}
	})
}

func dumpStore(t *testing.T, s *MemStore) map[string][]Entry {
	t.Helper()
	ctx := context.Background()
	ms, err := s.Minions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]Entry{}
	for _, m := range ms {
		es, err := s.Entries(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			es[i].Updated = es[i].Updated.UTC()
		}
		out[m] = es
	}
	return out
}
