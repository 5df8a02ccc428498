package registry

import (
	"slices"
	"testing"

	"github.com/brine-cm/brine/pkg/target"
)

// TestGrainEqualityUsesIndex plants a minion in the minions table without
// its grain rows. A scan would find it by its grains; an index-answered
// target cannot. That difference shows which path Select took.
func TestGrainEqualityUsesIndex(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"web-1", "web-2"} {
		if err := r.Upsert(Minion{ID: id, Grains: map[string]any{"roles": []any{"web"}, "env": "prod"}}); err != nil {
			t.Fatal(err)
		}
	}
	txn := r.db.Txn(true)
	if err := txn.Insert(tableMinions, &Minion{ID: "web-0", Grains: map[string]any{"roles": []any{"web"}, "env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	txn.Commit()

	tests := []struct {
		typ     target.Type
		expr    string
		indexed bool
	}{
		{target.Grain, "roles:web", true},
		{target.Grain, "roles:WEB", true},
		{target.Compound, "G@roles:web and G@env:prod", true},
		{target.Compound, "G@roles:web and web*", true},
		{target.Compound, "G@roles:web and G@env:prod or L@a,b", true},
		{target.Grain, "roles:we*", false},
		{target.GrainPCRE, "roles:web", false},
		{target.Compound, "not G@env:dev", false},
	}
	for _, tt := range tests {
		got, err := r.Select(tt.expr, tt.typ)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"web-0", "web-1", "web-2"}
		if tt.indexed {
			want = want[1:]
		}
		if !slices.Equal(got, want) {
			t.Errorf("Select(%q, %s) = %v, want %v (indexed=%v)", tt.expr, tt.typ, got, want, tt.indexed)
		}
	}
}

func TestPathValueKeysArePrefixFree(t *testing.T) {
	pairs := [][2]string{{"a", "b"}, {"a", "bc"}, {"ab", ""}, {"", "ab"}, {"a", ""}, {"", ""}}
	for _, x := range pairs {
		for _, y := range pairs {
			if x == y {
				continue
			}
			kx, ky := string(pathValueKey(x[0], x[1])), string(pathValueKey(y[0], y[1]))
			if len(kx) <= len(ky) && ky[:len(kx)] == kx {
				t.Errorf("key of %q is a prefix of key of %q", x, y)
			}
		}
	}
}
