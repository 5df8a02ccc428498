package minion

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
)

// TestStateQueueServesByJid: waiters are granted in jid order whatever
// order they arrived in, queue=False is refused with the running jid, and
// a waiter that gives up leaves the queue usable.
func TestStateQueueServesByJid(t *testing.T) {
	var q stateQueue
	ctx := context.Background()
	release, err := q.acquire(ctx, "state.apply", "20261125000000000001", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.acquire(ctx, "state.apply", "20261125000000000009", false); err == nil ||
		!strings.Contains(err.Error(), "20261125000000000001") {
		t.Fatalf("queue=False while busy: err %v, want a refusal naming the running jid", err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	// Arrive newest first; they must still run oldest first.
	for _, jid := range []string{"20261125000000000004", "20261125000000000003", "20261125000000000002"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := q.acquire(ctx, "state.apply", jid, true)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, jid)
			mu.Unlock()
			rel()
		}()
		waitFor(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.waiters[jid] != nil })
	}
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := q.acquire(cctx, "state.apply", "20261125000000000000", true)
		gaveUp <- err
	}()
	waitFor(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.waiters["20261125000000000000"] != nil })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter: %v", err)
	}
	release()
	wg.Wait()
	want := []string{"20261125000000000002", "20261125000000000003", "20261125000000000004"}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("ran %v, want %v", order, want)
	}
	if q.running != "" || len(q.waiters) != 0 {
		t.Fatalf("queue not idle after all releases: running %q waiters %d", q.running, len(q.waiters))
	}
}

// TestStateRunsDoNotOverlap drives the real stateRun with cmd.run chunks:
// two runs started together never interleave on the minion, the older jid
// goes first, and queue=False is refused while one runs.
func TestStateRunsDoNotOverlap(t *testing.T) {
	dir := t.TempDir()
	cfg := config.DefaultMinion()
	cfg.ID = "queue-minion"
	cfg.Master = []string{"127.0.0.1:1"}
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HostsFile = filepath.Join(dir, "hosts")
	m, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "log")
	chunks := func(tag string) []any {
		return []any{map[string]any{
			"__id__": "step-" + tag, "__sls__": "q", "__env__": "base", "state": "cmd", "fun": "run",
			"name": "echo start-" + tag + " >> " + logf + "; sleep 0.3; echo end-" + tag + " >> " + logf,
		}}
	}
	run := func(jid, tag string, extra map[string]any) error {
		kw := map[string]any{"__chunks__": chunks(tag), "__jid__": jid}
		for k, v := range extra {
			kw[k] = v
		}
		_, err := m.stateRun(context.Background(), m.env, nil, kw)
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, r := range []struct{ jid, tag string }{{"20261125000000000002", "B"}, {"20261125000000000001", "A"}} {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- run(r.jid, r.tag, nil) }()
	}
	waitFor(t, func() bool { b, _ := os.ReadFile(logf); return len(b) > 0 })
	if err := run("20261125000000000003", "C", map[string]any{"queue": false}); err == nil || !strings.Contains(err.Error(), "queue=True") {
		t.Fatalf("queue=False during a run: %v, want Salt's refusal", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(b))
	// Whichever goroutine got there first runs first (the queue was idle);
	// what matters is that the two never interleave and C never ran.
	if len(got) != 4 || strings.TrimPrefix(got[0], "start-") != strings.TrimPrefix(got[1], "end-") ||
		strings.TrimPrefix(got[2], "start-") != strings.TrimPrefix(got[3], "end-") {
		t.Fatalf("state runs overlapped or an extra one ran: %q", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
