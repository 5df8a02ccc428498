package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/webhook"
)

const testAckWait = 2 * time.Second

func openReact(t *testing.T, n *Node) *ReactQueue {
	t.Helper()
	q, err := OpenReactQueue(tctx(t), n, ReactOptions{AckWait: testAckWait})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// consume runs a master's consumer until the test ends.
func consume(t *testing.T, q *ReactQueue, handle func(context.Context, ReactItem) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Consume(ctx, handle); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

type tally struct {
	mu sync.Mutex
	n  map[string]int
	by map[string][]int
}

func (c *tally) add(tag string, master int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n, c.by = map[string]int{}, map[string][]int{}
	}
	c.n[tag]++
	c.by[tag] = append(c.by[tag], master)
}

func (c *tally) get(tag string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[tag]
}

// TestReactForwardOnce: every master forwards the event it saw on the
// bus; the queue keeps one copy and one master takes it.
func TestReactForwardOnce(t *testing.T) {
	ctx := tctx(t)
	var seen tally
	qs := []*ReactQueue{openReact(t, shared[0]), openReact(t, shared[1]), openReact(t, shared[2])}
	for i, q := range qs {
		consume(t, q, func(_ context.Context, it ReactItem) error {
			if strings.HasPrefix(it.Tag, "once/") {
				seen.add(it.Tag, i)
			}
			return nil
		})
	}
	for _, ev := range []struct{ tag, id string }{{"once/a", "evt-a"}, {"once/b", "evt-b"}} {
		for _, q := range qs {
			if err := q.Forward(ctx, ev.tag, map[string]any{"x": 1}, ev.id); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "both events reacted to", 10*time.Second, func() bool { return seen.get("once/a") >= 1 && seen.get("once/b") >= 1 })
	time.Sleep(testAckWait + 500*time.Millisecond) // room for a wrong second delivery
	if a, b := seen.get("once/a"), seen.get("once/b"); a != 1 || b != 1 {
		t.Fatalf("reacted %d and %d times, want once each (by %v)", a, b, seen.by)
	}
}

// TestReactHookSurvivesMasterLoss: the master holding a webhook event dies
// (never acknowledges); another master gets it after the ack wait. A
// reaction that fails to finish is retried, not dropped.
func TestReactHookSurvivesMasterLoss(t *testing.T) {
	ctx := tctx(t)
	var seen tally
	a, b := openReact(t, shared[0]), openReact(t, shared[1])
	gotA := make(chan ReactItem, 1)
	consume(t, a, func(hctx context.Context, it ReactItem) error {
		if it.Tag != "hook-loss/deploy" {
			return nil
		}
		gotA <- it
		// A "dies" holding the item: no ack, no nak, until the test ends.
		<-hctx.Done()
		return hctx.Err()
	})
	if _, err := a.AcceptHook(ctx, "hook-loss/deploy", map[string]any{"ref": "main"}, "guid-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gotA:
	case <-time.After(10 * time.Second):
		t.Fatal("master A never took the hook")
	}
	var redelivered uint64
	var mu sync.Mutex
	failOnce := true
	consume(t, b, func(_ context.Context, it ReactItem) error {
		if it.Tag != "hook-loss/deploy" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if failOnce {
			failOnce = false
			return errors.New("render failed half-way")
		}
		redelivered = it.Redelivered
		if !it.Hook || it.Delivery != "guid-1" || it.Data["ref"] != "main" {
			t.Errorf("item: %+v", it)
		}
		seen.add(it.Tag, 1)
		return nil
	})
	eventually(t, "master B reacted", 4*testAckWait+10*time.Second, func() bool { return seen.get("hook-loss/deploy") == 1 })
	mu.Lock()
	defer mu.Unlock()
	if redelivered < 2 {
		t.Fatalf("redelivered %d times before B's success, want >= 2 (A's loss, B's failure)", redelivered)
	}
}

func TestReactHookDeliveryDedupe(t *testing.T) {
	ctx := tctx(t)
	a, c := openReact(t, shared[0]), openReact(t, shared[2])
	if _, err := a.AcceptHook(ctx, "dedupe/x", nil, "guid-d"); err != nil {
		t.Fatal(err)
	}
	// The same delivery on another master is a replay...
	if _, err := c.AcceptHook(ctx, "dedupe/x", nil, "guid-d"); !errors.Is(err, webhook.ErrReplayed) {
		t.Fatalf("replay on C: %v", err)
	}
	// ...but the id is scoped by hook path, and hooks without one are all
	// distinct.
	if _, err := c.AcceptHook(ctx, "dedupe/y", nil, "guid-d"); err != nil {
		t.Fatal(err)
	}
	id1, err1 := a.AcceptHook(ctx, "dedupe/z", nil, "")
	id2, err2 := a.AcceptHook(ctx, "dedupe/z", nil, "")
	if err1 != nil || err2 != nil || id1 == id2 {
		t.Fatalf("hooks without delivery id: %q %v, %q %v", id1, err1, id2, err2)
	}
	var seen tally
	consume(t, c, func(_ context.Context, it ReactItem) error {
		if strings.HasPrefix(it.Tag, "dedupe/") {
			seen.add(it.Tag, 2)
		}
		return nil
	})
	eventually(t, "four items", 10*time.Second, func() bool {
		return seen.get("dedupe/x") == 1 && seen.get("dedupe/y") == 1 && seen.get("dedupe/z") == 2
	})
}
