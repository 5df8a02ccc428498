package registry_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/registry"
	"github.com/brine-cm/brine/pkg/target"
	"github.com/brine-cm/brine/pkg/target/targettest"
)

func newRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	r, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUpsertGetListDelete(t *testing.T) {
	r := newRegistry(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	grains := map[string]any{"os": "Debian", "roles": []string{"web"}}
	for _, m := range []registry.Minion{
		{ID: "web-2", Grains: grains, Connected: true, LastSeen: t0, ConnectedAt: t0},
		{ID: "db-1", Grains: map[string]any{"os": "Ubuntu"}},
		{ID: "web-10"},
	} {
		if err := r.Upsert(m); err != nil {
			t.Fatal(err)
		}
	}
	// The registry keeps its own copy of the grains.
	grains["os"] = "Changed"
	got, ok := r.Get("web-2")
	if !ok || got.Grains["os"] != "Debian" || !got.Connected || !got.LastSeen.Equal(t0) {
		t.Fatalf("Get(web-2) = %+v, %v", got, ok)
	}
	if roles, _ := got.Grains["roles"].([]any); len(roles) != 1 || roles[0] != "web" {
		t.Errorf("roles stored as %#v, want []any{\"web\"}", got.Grains["roles"])
	}
	// ...and hands out copies.
	got.Grains["os"] = "Mutated"
	if again, _ := r.Get("web-2"); again.Grains["os"] != "Debian" {
		t.Errorf("Get returned the stored map: now %v", again.Grains["os"])
	}
	if _, ok := r.Get("nope"); ok {
		t.Error("Get(nope) found something")
	}

	var ids []string
	for _, m := range r.List() {
		ids = append(ids, m.ID)
	}
	if want := []string{"db-1", "web-10", "web-2"}; !slices.Equal(ids, want) {
		t.Errorf("List ids = %v, want %v", ids, want)
	}
	var conn []string
	for _, m := range r.ListConnected(true) {
		conn = append(conn, m.ID)
	}
	if !slices.Equal(conn, []string{"web-2"}) {
		t.Errorf("ListConnected(true) = %v", conn)
	}

	if err := r.Delete("web-2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Get("web-2"); ok {
		t.Error("web-2 still there after Delete")
	}
	if sel, _ := r.Select("roles:web", target.Grain); len(sel) != 0 {
		t.Errorf("deleted minion still selected by its grains: %v", sel)
	}
	if err := r.Delete("web-2"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "a\x00b"} {
		if err := r.Upsert(registry.Minion{ID: bad}); err == nil {
			t.Errorf("Upsert(%q) accepted", bad)
		}
	}
}

func TestSetConnected(t *testing.T) {
	r := newRegistry(t)
	if err := r.SetConnected("ghost", true, time.Now()); !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("SetConnected(ghost) = %v, want ErrNotFound naming the minion", err)
	}
	if err := r.Upsert(registry.Minion{ID: "m", Grains: map[string]any{"os": "Debian"}}); err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	if err := r.SetConnected("m", true, t1); err != nil {
		t.Fatal(err)
	}
	if err := r.SetConnected("m", false, t2); err != nil {
		t.Fatal(err)
	}
	m, _ := r.Get("m")
	if m.Connected || !m.ConnectedAt.Equal(t1) || !m.LastSeen.Equal(t2) || m.Grains["os"] != "Debian" {
		t.Errorf("after connect at t1, disconnect at t2: %+v", m)
	}
	// Disconnected minions are still known and still targeted.
	if ids, _ := r.Select("os:debian", target.Grain); !slices.Equal(ids, []string{"m"}) {
		t.Errorf("Select after disconnect = %v", ids)
	}
}

func containsStr(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || containsStr(s[1:], sub))
}

func TestUpsertReplacesGrains(t *testing.T) {
	r := newRegistry(t)
	up := func(g map[string]any) {
		if err := r.Upsert(registry.Minion{ID: "m1", Grains: g}); err != nil {
			t.Fatal(err)
		}
	}
	up(map[string]any{"roles": []any{"web", "db"}, "env": "prod"})
	up(map[string]any{"roles": []any{"cache"}})
	for expr, want := range map[string][]string{
		"roles:web":   nil,
		"roles:db":    nil,
		"env:prod":    nil,
		"roles:cache": {"m1"},
	} {
		got, err := r.Select(expr, target.Grain)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Select(%q) = %v, want %v", expr, got, want)
		}
	}
}

func TestSelect(t *testing.T) {
	r := newRegistry(t)
	minions := map[string]map[string]any{
		"web-01": {"roles": []any{"web"}, "env": "prod", "os": "Debian", "ipv4": []any{"198.18.0.5"}},
		"web-02": {"roles": []any{"web", "db"}, "env": "staging", "os": "Debian", "ipv4": []any{"198.18.1.5"}},
		"db-01":  {"roles": "db", "env": "prod", "os": "Ubuntu", "ipv4": []any{"10.0.0.1"}},
		"a":      {"env": "dev"},
	}
	for id, g := range minions {
		if err := r.Upsert(registry.Minion{ID: id, Grains: g}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		typ  target.Type
		expr string
		want []string
	}{
		{target.Glob, "*", []string{"a", "db-01", "web-01", "web-02"}},
		{target.Glob, "web-*", []string{"web-01", "web-02"}},
		{target.Glob, "*-01", []string{"db-01", "web-01"}},
		{target.List, "db-01,a,ghost", []string{"a", "db-01"}},
		{target.Grain, "roles:web", []string{"web-01", "web-02"}},
		{target.Grain, "roles:DB", []string{"db-01", "web-02"}},
		{target.Grain, "env:p*", []string{"db-01", "web-01"}},
		{target.GrainPCRE, "os:deb", []string{"web-01", "web-02"}},
		{target.PCRE, "web", []string{"web-01", "web-02"}},
		{target.IPCIDR, "198.18.0.0/16", []string{"web-01", "web-02"}},
		{target.Compound, "G@roles:web and G@env:prod or L@a,b", []string{"a", "web-01"}},
		{target.Compound, "G@roles:db and not web*", []string{"db-01"}},
		{target.Compound, "not G@env:prod", []string{"a", "web-02"}},
	}
	for _, tt := range tests {
		got, err := r.Select(tt.expr, tt.typ)
		if err != nil {
			t.Errorf("Select(%q, %s): %v", tt.expr, tt.typ, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Select(%q, %s) = %v, want %v", tt.expr, tt.typ, got, tt.want)
		}
	}
	if _, err := r.Select("web* and", target.Compound); err == nil {
		t.Error("Select with a bad expression succeeded")
	}
}

// TestSelectEqualsBruteForce is the registry's correctness contract: for
// random minions and expressions, the indexed Select returns exactly the
// minions Matcher.Match accepts, also after grains change and minions go.
func TestSelectEqualsBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	r := newRegistry(t)
	all := map[string]map[string]any{}
	for i := range 300 {
		id := targettest.ID(rng, i)
		all[id] = targettest.Grains(rng)
		if err := r.Upsert(registry.Minion{ID: id, Grains: all[id]}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(round string, n int) {
		nonEmpty := 0
		for range n {
			expr, typ := targettest.Expr(rng)
			m, err := target.Compile(expr, typ)
			if err != nil {
				t.Fatalf("Compile(%q, %s): %v", expr, typ, err)
			}
			var want []string
			for id, g := range all {
				if m.Match(id, g) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			got := r.SelectMatcher(m)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: %s %q: Select = %v\nbrute force = %v", round, typ, expr, got, want)
			}
			if len(got) > 0 {
				nonEmpty++
			}
		}
		if nonEmpty < n/4 {
			t.Errorf("%s: only %d of %d expressions selected anything", round, nonEmpty, n)
		}
	}
	check("initial", 1500)
	// Change the grains of a third of the minions and forget a tenth.
	i := 0
	for id := range all {
		switch {
		case i%3 == 0:
			all[id] = targettest.Grains(rng)
			if err := r.Upsert(registry.Minion{ID: id, Grains: all[id]}); err != nil {
				t.Fatal(err)
			}
		case i%10 == 1:
			delete(all, id)
			if err := r.Delete(id); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	check("after updates", 1500)
}

func TestWatch(t *testing.T) {
	r := newRegistry(t)
	if r.Index() != 0 {
		t.Fatalf("fresh registry index = %d", r.Index())
	}
	if err := r.Upsert(registry.Minion{ID: "m"}); err != nil {
		t.Fatal(err)
	}
	idx := r.Index()
	if idx == 0 {
		t.Fatal("index did not move on Upsert")
	}
	// Already past: returns at once.
	if got, err := r.Watch(context.Background(), idx-1); err != nil || got != idx {
		t.Fatalf("Watch(idx-1) = %d, %v", got, err)
	}
	// Blocks until a write.
	done := make(chan uint64)
	go func() {
		got, err := r.Watch(context.Background(), idx)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	select {
	case got := <-done:
		t.Fatalf("Watch returned %d before any write", got)
	case <-time.After(50 * time.Millisecond):
	}
	if err := r.SetConnected("m", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != idx+1 {
			t.Errorf("Watch woke with index %d, want %d", got, idx+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not wake on SetConnected")
	}
	// Ends with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.Watch(ctx, r.Index()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch with expiring ctx = %v", err)
	}
}

// TestConcurrentSelect runs selects against a registry being rewritten;
// under -race this checks that readers only see immutable snapshots, and
// every answer must be one of the two states the writer alternates between.
func TestConcurrentSelect(t *testing.T) {
	r := newRegistry(t)
	for i := range 50 {
		id := "m-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := r.Upsert(registry.Minion{ID: id, Grains: map[string]any{"role": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		role := []string{"x", "y"}
		for i := 0; ctx.Err() == nil; i++ {
			if err := r.Upsert(registry.Minion{ID: "m-aa", Grains: map[string]any{"role": role[i%2]}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				ids, err := r.Select("role:x", target.Grain)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ids) != 49 && len(ids) != 50 {
					t.Errorf("Select saw %d minions, want 49 or 50", len(ids))
					return
				}
				for _, m := range r.List() {
					_ = m.Grains["role"]
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
}
