package cluster

import (
	"sync"
	"testing"
	"time"
)

type stateLog struct {
	mu  sync.Mutex
	got map[string]MinionState
}

func (l *stateLog) record(st MinionState, known bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got == nil {
		l.got = map[string]MinionState{}
	}
	if !known {
		delete(l.got, st.ID)
		return
	}
	l.got[st.ID] = st
}

func (l *stateLog) get(id string) (MinionState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.got[id]
	return st, ok
}

func TestPresence(t *testing.T) {
	ctx := tctx(t)
	var onB stateLog
	a, err := OpenPresence(ctx, shared[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenPresence(ctx, shared[1], onB.record)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := OpenPresence(ctx, shared[2], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	now := time.Now().UTC()
	if err := a.Connected(ctx, "pres-web1", map[string]any{"roles": []any{"web"}}, now); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees web1 on A with grains", 5*time.Second, func() bool {
		st, ok := onB.get("pres-web1")
		return ok && st.Connected && st.Master == shared[0].ID() && st.Grains["roles"] != nil
	})
	// web1 moves to C; A notices its old stream end afterwards and must
	// not undo C's claim.
	if err := c.Connected(ctx, "pres-web1", map[string]any{"roles": []any{"web"}}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.Disconnected(ctx, "pres-web1", now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees web1 on C", 5*time.Second, func() bool {
		st, ok := b.Lookup("pres-web1")
		return ok && st.Connected && st.Master == shared[2].ID()
	})
	// A minion on A, then A stops: its minions count as disconnected on
	// B at once (A said goodbye), without anyone rewriting their entries.
	if err := a.Connected(ctx, "pres-db1", nil, now); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees db1 connected", 5*time.Second, func() bool {
		st, ok := b.Lookup("pres-db1")
		return ok && st.Connected && b.Alive(shared[0].ID())
	})
	a.Close()
	eventually(t, "B takes db1 for disconnected", 5*time.Second, func() bool {
		st, ok := onB.get("pres-db1")
		st2, _ := b.Lookup("pres-db1")
		return ok && !st.Connected && !st2.Connected && !b.Alive(shared[0].ID())
	})
	if st, _ := b.Lookup("pres-web1"); !st.Connected {
		t.Fatal("web1, on C, counted as disconnected")
	}
	if err := c.Forget(ctx, "pres-db1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B forgets db1", 5*time.Second, func() bool { _, ok := b.Lookup("pres-db1"); return !ok })
}
