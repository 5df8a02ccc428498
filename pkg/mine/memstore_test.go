package mine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

func newStore(t *testing.T, path string) *MemStore {
	t.Helper()
	s, err := NewMemStore(path)
	if err != nil {
		t.Fatalf("NewMemStore(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeClock is a settable clock so expiry does not sleep.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestPutChanged(t *testing.T) {
	ctx := context.Background()
	type put struct {
		data    map[string]any
		removed []string
		replace bool
		changed []string
		after   map[string]any // the minion's whole mine afterwards
	}
	tests := []struct {
		name string
		puts []put
	}{
		{
			name: "first put changes everything",
			puts: []put{{
				data:    map[string]any{"network.ip_addrs": []string{"198.18.0.5"}, "test.ping": true},
				changed: []string{"network.ip_addrs", "test.ping"},
				after:   map[string]any{"network.ip_addrs": []any{"198.18.0.5"}, "test.ping": true},
			}},
		},
		{
			name: "same value again changes nothing, even in another Go type",
			puts: []put{
				{data: map[string]any{"n": map[string]any{"a": []any{1.0, "x"}}}, changed: []string{"n"}},
				{data: map[string]any{"n": map[string]any{"a": []any{1, "x"}}}, changed: nil,
					after: map[string]any{"n": map[string]any{"a": []any{1.0, "x"}}}},
			},
		},
		{
			name: "deep change inside a nested value is seen",
			puts: []put{
				{data: map[string]any{"n": map[string]any{"a": []any{"x", "y"}}}, changed: []string{"n"}},
				{data: map[string]any{"n": map[string]any{"a": []any{"x", "z"}}}, changed: []string{"n"}},
			},
		},
		{
			name: "partial put leaves other functions alone",
			puts: []put{
				{data: map[string]any{"a": 1, "b": 2}, changed: []string{"a", "b"}},
				{data: map[string]any{"b": 3}, changed: []string{"b"}, after: map[string]any{"a": 1.0, "b": 3.0}},
			},
		},
		{
			name: "removed drops and reports, unknown removed is not a change",
			puts: []put{
				{data: map[string]any{"a": 1, "b": 2}, changed: []string{"a", "b"}},
				{removed: []string{"a", "nope"}, changed: []string{"a"}, after: map[string]any{"b": 2.0}},
			},
		},
		{
			name: "replace drops functions not in data",
			puts: []put{
				{data: map[string]any{"a": 1, "b": 2, "c": 3}, changed: []string{"a", "b", "c"}},
				{data: map[string]any{"b": 2, "d": 4}, replace: true, changed: []string{"a", "c", "d"},
					after: map[string]any{"b": 2.0, "d": 4.0}},
			},
		},
		{
			name: "replace with nothing empties the minion",
			puts: []put{
				{data: map[string]any{"a": 1}, changed: []string{"a"}},
				{replace: true, changed: []string{"a"}, after: map[string]any{}},
			},
		},
		{
			name: "data wins over removed for the same function",
			puts: []put{
				{data: map[string]any{"a": 1}, removed: []string{"a"}, changed: []string{"a"}, after: map[string]any{"a": 1.0}},
			},
		},
		{
			name: "allow_tgt change alone is a change",
			puts: []put{
				{data: map[string]any{"a": Encode("v", "web*", "")}, changed: []string{"a"}},
				{data: map[string]any{"a": Encode("v", "web*", "glob")}, changed: nil},
				{data: map[string]any{"a": Encode("v", "db*", "glob")}, changed: []string{"a"}},
				{data: map[string]any{"a": "v"}, changed: []string{"a"}, after: map[string]any{"a": "v"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, "")
			for i, p := range tt.puts {
				got, err := s.Put(ctx, "m1", p.data, p.removed, p.replace)
				if err != nil {
					t.Fatalf("put %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, p.changed) {
					t.Fatalf("put %d: changed = %#v, want %#v", i, got, p.changed)
				}
				if p.after == nil {
					continue
				}
				es, err := s.Entries(ctx, "m1")
				if err != nil {
					t.Fatal(err)
				}
				have := map[string]any{}
				for _, e := range es {
					have[e.Function] = e.Value
				}
				if !reflect.DeepEqual(have, p.after) {
					t.Fatalf("put %d: mine = %#v, want %#v", i, have, p.after)
				}
			}
		})
	}
}

func TestPutRejectsBadInput(t *testing.T) {
	s := newStore(t, "")
	ctx := context.Background()
	tests := []struct {
		name, id string
		data     map[string]any
		want     string
	}{
		{"empty id", "", map[string]any{"a": 1}, "empty minion id"},
		{"empty function", "m1", map[string]any{"": 1}, "m1: empty function name"},
		{"unserializable", "m1", map[string]any{"f.x": func() {}}, "function f.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put(ctx, tt.id, tt.data, nil, false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if ms, _ := s.Minions(ctx); len(ms) != 0 {
		t.Fatalf("a rejected put left data behind: %v", ms)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "")
	for _, id := range []string{"m1", "m2"} {
		if _, err := s.Put(ctx, id, map[string]any{"a": 1, "b": 2, "c": 3}, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "m1", "a", "c", "missing"); err != nil {
		t.Fatal(err)
	}
	assertFunctions(t, s, "m1", "b")
	assertFunctions(t, s, "m2", "a", "b", "c")
	if err := s.Delete(ctx, "m2"); err != nil { // mine.flush
		t.Fatal(err)
	}
	assertFunctions(t, s, "m2")
	if ms, _ := s.Minions(ctx); !reflect.DeepEqual(ms, []string{"m1"}) {
		t.Fatalf("minions = %v, want [m1]", ms)
	}
	if err := s.Delete(ctx, "ghost"); err != nil {
		t.Fatalf("deleting an unknown minion: %v", err)
	}
}

func assertFunctions(t *testing.T, s Store, id string, want ...string) {
	t.Helper()
	es, err := s.Entries(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Function)
	}
	if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s functions = %v, want %v", id, got, want)
	}
}

func TestExpire(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "")
	clk := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = clk.now
	put := func(id string, data map[string]any) {
		t.Helper()
		if _, err := s.Put(ctx, id, data, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	put("old", map[string]any{"a": 1})
	put("refreshed", map[string]any{"a": 1, "b": 1})
	clk.add(time.Hour)
	put("new", map[string]any{"a": 1})
	// Re-sending one unchanged function counts as a report.
	put("refreshed", map[string]any{"a": 1})
	clk.add(time.Minute)

	gone, err := s.Expire(ctx, clk.now().Add(-30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gone, []string{"old"}) {
		t.Fatalf("expired %v, want [old]", gone)
	}
	assertFunctions(t, s, "old")
	assertFunctions(t, s, "refreshed", "a", "b")
	gone, err = s.Expire(ctx, clk.now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gone, []string{"new", "refreshed"}) {
		t.Fatalf("expired %v, want [new refreshed]", gone)
	}
	if ms, _ := s.Minions(ctx); len(ms) != 0 {
		t.Fatalf("minions left: %v", ms)
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mine.json")
	s, err := NewMemStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "web1", map[string]any{
		"network.ip_addrs": []string{"198.18.0.10"},
		"web_ip":           Encode([]string{"198.18.0.10"}, "lb*", "glob"),
	}, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "db1", map[string]any{"test.ping": true}, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "db1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "db2", map[string]any{"grains.item": map[string]any{"os": "Debian"}}, nil, false); err != nil {
		t.Fatal(err)
	}
	want1, _ := s.Entries(ctx, "web1")
	// Close must flush the write-behind even when the debounce has not run.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "x", nil, nil, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v, want ErrClosed", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp")); len(tmps) != 0 {
		t.Fatalf("temp files left: %v", tmps)
	}

	r := newStore(t, path)
	got1, err := r.Entries(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got1, want1) {
		t.Fatalf("after reopen\n got %#v\nwant %#v", got1, want1)
	}
	if got1[1].AllowTgt != "lb*" || got1[1].AllowTgtType != "glob" {
		t.Fatalf("allow_tgt lost: %#v", got1[1])
	}
	ms, _ := r.Minions(ctx)
	if !reflect.DeepEqual(ms, []string{"db2", "web1"}) {
		t.Fatalf("minions after reopen = %v", ms)
	}
	// Unchanged values stay unchanged across the restart.
	ch, err := r.Put(ctx, "web1", map[string]any{"network.ip_addrs": []any{"198.18.0.10"}}, nil, false)
	if err != nil || len(ch) != 0 {
		t.Fatalf("re-put after reopen: changed %v err %v", ch, err)
	}
	// Expiry keeps working on loaded data.
	gone, err := r.Expire(ctx, time.Now().Add(time.Minute))
	if err != nil || !reflect.DeepEqual(gone, []string{"db2", "web1"}) {
		t.Fatalf("expire after reopen: %v %v", gone, err)
	}
}

func TestWriteBehind(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mine.json")
	s := newStore(t, path)
	if _, err := s.Put(ctx, "m1", map[string]any{"a": 1}, nil, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var fd fileData
			if err := json.Unmarshal(b, &fd); err != nil {
				t.Fatalf("file torn or invalid: %v", err)
			}
			if len(fd.Entries) == 1 && fd.Entries[0].MinionID == "m1" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("write-behind never wrote %s (last err %v)", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body, want string
	}{
		{"garbage", "{not json", "parse"},
		{"version", `{"version": 9, "entries": []}`, "unsupported version 9"},
		{"empty id", `{"version": 1, "entries": [{"minion_id": "", "function": "a"}]}`, "entry 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".json")
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewMemStore(p)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %s and say %q", err, p, tt.want)
			}
		})
	}
}

func TestPersistErrorSurfacesOnClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "mine.json") // directory does not exist
	s, err := NewMemStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "m1", map[string]any{"a": 1}, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Close = %v, want an error naming %s", err, path)
	}
}

func TestWatchFiresOnChange(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "")
	if _, err := s.Put(ctx, "m1", map[string]any{"a": 1}, nil, false); err != nil {
		t.Fatal(err)
	}
	ws := memdb.NewWatchSet()
	got, err := s.GetWatch(ctx, ws, []string{"m1", "m2"}, "a")
	if err != nil || len(got) != 1 {
		t.Fatalf("GetWatch = %v %v", got, err)
	}
	many := []string{"m2"}
	for i := range pointLookupMax {
		many = append(many, fmt.Sprintf("other-%d", i))
	}
	wsMany := memdb.NewWatchSet()
	if _, err := s.GetWatch(ctx, wsMany, many, "a"); err != nil {
		t.Fatal(err)
	}
	ws2 := memdb.NewWatchSet()
	if _, err := s.EntriesWatch(ctx, ws2, "m2"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := ws.WatchCtx(short); err == nil {
		t.Fatal("watch fired with no change")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Put(ctx, "m2", map[string]any{"a": 2}, nil, false)
	}()
	wctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := ws.WatchCtx(wctx); err != nil {
		t.Fatalf("Get watch did not fire on m2's new entry: %v", err)
	}
	if err := wsMany.WatchCtx(wctx); err != nil {
		t.Fatalf("Get watch over many ids did not fire: %v", err)
	}
	if err := ws2.WatchCtx(wctx); err != nil {
		t.Fatalf("Entries watch did not fire: %v", err)
	}
}

// TestGetAtScale fills the store like a 10,000-minion master and reads it
// the ways mine.get does.
func TestGetAtScale(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "")
	ids := fillStore(t, s, 10000)
	got, err := s.Get(ctx, ids, "network.ip_addrs")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10000 {
		t.Fatalf("got %d minions, want 10000", len(got))
	}
	if v := got["minion-04242"]; !reflect.DeepEqual(v, []any{ipFor(4242)}) {
		t.Fatalf("minion-04242 = %#v", v)
	}
	// Only the odd minions carry the role function.
	got, err = s.Get(ctx, append(ids[:10:10], "not-a-minion"), "role.name")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("role.name on 10 ids: %d results, want 5: %v", len(got), got)
	}
	// Both lookup strategies agree at the switch-over point.
	for _, n := range []int{pointLookupMax, pointLookupMax + 1} {
		sub := append(ids[:n-1:n-1], "not-a-minion")
		got, err := s.Get(ctx, sub, "role.name")
		if err != nil {
			t.Fatal(err)
		}
		if want := (n - 1) / 2; len(got) != want {
			t.Fatalf("%d ids: %d results, want %d", n, len(got), want)
		}
		for id := range got {
			if id == "not-a-minion" || (id[len(id)-1]-'0')%2 != 1 {
				t.Fatalf("%d ids: unexpected %s", n, id)
			}
		}
	}
	got, err = s.Get(ctx, ids, "no.such")
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown function: %v %v", got, err)
	}
}

func ipFor(i int) string { return fmt.Sprintf("198.18.%d.%d", i/250, i%250+1) }

func fillStore(tb testing.TB, s Store, n int) []string {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		id := fmt.Sprintf("minion-%05d", i)
		ids[i] = id
		data := map[string]any{
			"network.ip_addrs":     []any{ipFor(i)},
			"network.get_hostname": id + ".example.test",
			"grains.items":         map[string]any{"os": "Debian", "osrelease": "12", "num_cpus": 2.0},
		}
		if i%2 == 1 {
			data["role.name"] = "web"
		}
		if _, err := s.Put(ctx, id, data, nil, true); err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

func TestConcurrentPutGet(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, filepath.Join(t.TempDir(), "mine.json"))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprintf("m%d", w)
				if _, err := s.Put(ctx, id, map[string]any{"a": i}, nil, i%7 == 0); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Get(ctx, []string{"m0", "m1", "m2", "m3"}, "a"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, _ := s.Get(ctx, []string{"m0", "m1", "m2", "m3"}, "a")
	for id, v := range got {
		if v != 199.0 {
			t.Fatalf("%s = %v, want 199", id, v)
		}
	}
}
