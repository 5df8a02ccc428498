package reactor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/event"
)

// slowFirstLocal records the order jobs are published in per tag, and
// makes earlier events slower to publish, so that parallel workers would
// finish them out of order if nothing kept them in line.
type slowFirstLocal struct {
	mu    sync.Mutex
	order map[string][]int
}

func (l *slowFirstLocal) PublishAsync(_ context.Context, tgt, _, _ string, args []any, _ map[string]any, _ string) (string, error) {
	var n int
	fmt.Sscan(fmt.Sprint(args[0]), &n)
	time.Sleep(time.Duration(10-n%10) * 3 * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.order[tgt] = append(l.order[tgt], n)
	return fmt.Sprintf("2026010112000000%04d", n), nil
}

func (l *slowFirstLocal) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.order {
		n += len(o)
	}
	return n
}

// TestReactionsToOneTagRunInArrivalOrder: with several workers, events of
// one tag (two pushes to one hook) are reacted to in the order they came
// in, while another tag's events are not held up behind them.
func TestReactionsToOneTagRunInArrivalOrder(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "order.sls", `
run_{{ data['n'] }}:
  local.test.arg:
    - tgt: {{ tag.split('/')[-1] }}
    - arg:
      - {{ data['n'] }}
`)
	bus := event.NewLocal()
	local := &slowFirstLocal{order: map[string][]int{}}
	r, err := New(Config{SpoolDir: dir + "/spool", Workers: 4, QueueHighWater: 100,
		Rules: []Rule{{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{file}}}}, bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	runReactor(t, r)
	const per = 10
	for i := range per {
		for _, role := range []string{"web", "api"} {
			if err := r.Accept(context.Background(), "salt/netapi/hook/deploy/"+role, map[string]any{"n": i}, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "every reaction", 20*time.Second, func() bool { return local.count() == 2*per })
	for _, role := range []string{"web", "api"} {
		got := local.order[role]
		for i, n := range got {
			if n != i {
				t.Fatalf("%s: reactions ran in order %v, want 0..%d", role, got, per-1)
			}
		}
	}
}

// TestFailedSpoolWriteNeverActs: an event whose spool write fails is
// answered with an error and never reacted to, although a worker may have
// rendered it already; the tag's next event is not held up by it.
func TestFailedSpoolWriteNeverActs(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "run:\n  local.test.arg:\n    - tgt: a\n    - arg:\n      - {{ data['n'] }}\n")
	local := &fakeLocal{}
	r, err := New(Config{SpoolDir: dir + "/spool", Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, nil, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	runReactor(t, r)
	journal := filepath.Join(dir, "spool", "journal")
	if err := os.RemoveAll(journal); err != nil {
		t.Fatal(err)
	}
	err = r.Accept(context.Background(), "t/x", map[string]any{"n": 1}, "d-1")
	if err == nil {
		t.Fatal("Accept succeeded without a spool")
	}

	if err := os.Mkdir(journal, 0o700); err != nil {
		t.Fatal(err)
	}
	// The same delivery again (the sender's retry), then another.
	for _, h := range []struct {
		n        int
		delivery string
	}{{2, "d-1"}, {3, "d-3"}} {
		if err := r.Accept(context.Background(), "t/x", map[string]any{"n": h.n}, h.delivery); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both reactions", 5*time.Second, func() bool { return local.n.Load() == 2 })
	waitFor(t, "the spool to empty", 2*time.Second, func() bool { return r.Stats().Spooled == 0 })
	time.Sleep(20 * time.Millisecond)
	var got []any
	for _, c := range local.all() {
		got = append(got, c.Args[0])
	}
	if fmt.Sprint(got) != "[2 3]" {
		t.Errorf("reacted to %v, want [2 3]", got)
	}
}
