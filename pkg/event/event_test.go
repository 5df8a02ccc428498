package event

import (
	"context"
	"testing"
	"time"
)

func TestMatchTag(t *testing.T) {
	for _, tc := range []struct {
		glob, tag string
		want      bool
	}{
		{"", "anything/at/all", true},
		{"*", "salt/netapi/hook/deploy/web", true},
		{"salt/netapi/hook/deploy/*", "salt/netapi/hook/deploy/php-web-host", true},
		{"salt/netapi/hook/deploy/*", "salt/netapi/hook/other/x", false},
		{"mine/*/update", "mine/db3/update", true},
		{"mine/*/update", "mine/db3/flush", false},
		{"job/*/ret/*", "job/20261125/ret/web1", true},
		{"key/?/accepted", "key/a/accepted", true},
		{"[", "[", false}, // a bad pattern matches nothing rather than everything
	} {
		if got := MatchTag(tc.glob, tc.tag); got != tc.want {
			t.Errorf("MatchTag(%q, %q) = %v, want %v", tc.glob, tc.tag, got, tc.want)
		}
	}
}

func TestSlowSubscriberDropsAreCountedAndNeverBlock(t *testing.T) {
	b := NewLocal()
	slow := b.Subscribe("*", 2)
	fast := b.Subscribe("a/*", 100)
	other := b.Subscribe("b/*", 100)
	defer slow.Close()
	defer fast.Close()
	defer other.Close()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			b.Publish(context.Background(), "a/x", map[string]any{"i": i})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Publish blocked on a full subscriber")
	}
	if slow.Dropped() != 8 {
		t.Errorf("slow subscriber dropped %d, want 8", slow.Dropped())
	}
	if fast.Dropped() != 0 || len(fast.C) != 10 {
		t.Errorf("fast subscriber: dropped %d, queued %d", fast.Dropped(), len(fast.C))
	}
	if len(other.C) != 0 {
		t.Error("non-matching subscriber got events")
	}
	if pub, drop := b.Stats(); pub != 10 || drop != 8 {
		t.Errorf("Stats = %d published, %d dropped", pub, drop)
	}
	ev := <-fast.C
	if ev.Tag != "a/x" || ev.Data["i"] != 0 {
		t.Errorf("first event %v", ev)
	}
}

func TestCloseUnsubscribes(t *testing.T) {
	b := NewLocal()
	s := b.Subscribe("*", 1)
	s.Close()
	s.Close() // idempotent
	if _, ok := <-s.C; ok {
		t.Fatal("channel open after Close")
	}
	b.Publish(context.Background(), "x", nil) // must not panic on a closed subscriber
}
