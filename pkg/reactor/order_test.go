package reactor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// preparingLocal is a Preparer: preparing is slow (earlier events
// slower), sending records the order.
type preparingLocal struct {
	slowFirstLocal
	mu              sync.Mutex
	preparing, most int
	sent, cancelled int
	failTgt         string
	// onPrepare, when set, runs inside each prepare.
	onPrepare func()
}

type prepared struct {
	l   *preparingLocal
	tgt string
	n   int
}

func (l *preparingLocal) PublishAsync(context.Context, string, string, string, []any, map[string]any, string) (string, error) {
	panic("a Preparer's reactions must be prepared and sent")
}

func (l *preparingLocal) PreparePublish(_ context.Context, tgt, _, _ string, args []any, _ map[string]any, _ string) (Prepared, error) {
	if tgt == l.failTgt {
		return nil, fmt.Errorf("no minion matches")
	}
	if l.onPrepare != nil {
		l.onPrepare()
	}
	var n int
	fmt.Sscan(fmt.Sprint(args[0]), &n)
	l.mu.Lock()
	l.preparing++
	l.most = max(l.most, l.preparing)
	l.mu.Unlock()
	time.Sleep(time.Duration(10-n%10) * 3 * time.Millisecond)
	l.mu.Lock()
	l.preparing--
	l.mu.Unlock()
	return &prepared{l: l, tgt: tgt, n: n}, nil
}

func (p *prepared) Send(context.Context) (string, error) {
	l := p.l
	l.slowFirstLocal.mu.Lock()
	l.order[p.tgt] = append(l.order[p.tgt], p.n)
	l.slowFirstLocal.mu.Unlock()
	l.mu.Lock()
	l.sent++
	l.mu.Unlock()
	return fmt.Sprintf("2026010112000000%04d", p.n), nil
}

func (p *prepared) Cancel() {
	p.l.mu.Lock()
	p.l.cancelled++
	p.l.mu.Unlock()
}

// TestPreparedPublishesSendInArrivalOrder: with a Local that prepares
// publishes, events of one tag are prepared in parallel and sent in the
// order they came in; a prepare that fails is that reaction's failure.
func TestPreparedPublishesSendInArrivalOrder(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "order.sls", `
run_{{ data['n'] }}:
  local.test.arg:
    - tgt: {{ tag.split('/')[-1] }}
    - arg:
      - {{ data['n'] }}
`)
	bus := event.NewLocal()
	failed := collect(t, bus, TagFailed)
	local := &preparingLocal{slowFirstLocal: slowFirstLocal{order: map[string][]int{}}, failTgt: "none"}
	r, err := New(Config{SpoolDir: dir + "/spool", Workers: 8, QueueHighWater: 100,
		Rules: []Rule{{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{file}}}}, bus, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	runReactor(t, r)
	const per = 10
	for i := range per {
		if err := r.Accept(context.Background(), "salt/netapi/hook/deploy/web", map[string]any{"n": i}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Accept(context.Background(), "salt/netapi/hook/deploy/none", map[string]any{"n": 0}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every reaction", 20*time.Second, func() bool {
		return local.count() == per && len(failed.withTag(TagFailed)) == 1
	})
	if got := local.order["web"]; fmt.Sprint(got) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Errorf("sent in order %v", got)
	}
	local.mu.Lock()
	defer local.mu.Unlock()
	if local.most < 2 {
		t.Errorf("at most %d prepares at once: events of one tag were prepared one by one", local.most)
	}
	if msg := failed.withTag(TagFailed)[0].Data["error"]; !strings.Contains(fmt.Sprint(msg), `local.test.arg on glob "none": no minion matches`) {
		t.Errorf("reactor/failed error %q", msg)
	}
	if local.cancelled != 0 || local.sent != per {
		t.Errorf("sent %d, cancelled %d", local.sent, local.cancelled)
	}
}

// A publish prepared when the reactor is stopping is cancelled, not sent.
func TestPreparedPublishCancelledOnShutdown(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "a:\n  local.test.arg:\n    - tgt: web\n    - arg: [1]\n")
	local := &preparingLocal{slowFirstLocal: slowFirstLocal{order: map[string][]int{}}}
	r, err := New(Config{SpoolDir: dir + "/spool", Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, nil, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	local.onPrepare = cancel // the master shuts down while it prepares
	r.process(ctx, job{tag: "t/x", data: map[string]any{}})
	local.mu.Lock()
	defer local.mu.Unlock()
	if local.sent != 0 || local.cancelled != 1 {
		t.Errorf("sent %d, cancelled %d; want 0, 1", local.sent, local.cancelled)
	}
}

// decliningLocal is a Preparer that declines every publish (a master in a
// cluster): the reaction is published whole.
type decliningLocal struct{ fakeLocal }

func (*decliningLocal) PreparePublish(context.Context, string, string, string, []any, map[string]any, string) (Prepared, error) {
	return nil, nil
}

func TestDeclinedPrepareIsPublishedWhole(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "a:\n  local.test.arg:\n    - tgt: web\n    - arg: [1]\n")
	local := &decliningLocal{}
	r, err := New(Config{SpoolDir: dir + "/spool", Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, nil, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.process(context.Background(), job{tag: "t/x", data: map[string]any{}})
	if c := local.all(); len(c) != 1 || c[0].Tgt != "web" || r.Stats().Reactions["started"] != 1 {
		t.Errorf("published %+v, stats %+v", c, r.Stats())
	}
}
