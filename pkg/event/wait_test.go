package event

import (
	"context"
	"testing"
	"time"
)

func TestPublishWait(t *testing.T) {
	const wait = 200 * time.Millisecond
	tests := []struct {
		name      string
		readAfter time.Duration // -1: the subscriber never reads
		dropped   uint64
	}{
		{"slow subscriber catches up: nothing lost", 30 * time.Millisecond, 0},
		{"stuck subscriber: dropped after the wait", -1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewLocal()
			sub := b.Subscribe("t/*", 1)
			defer sub.Close()
			b.Publish(context.Background(), "t/1", nil) // fills the buffer
			if tt.readAfter >= 0 {
				go func() { time.Sleep(tt.readAfter); <-sub.C }()
			}
			start := time.Now()
			b.PublishWait(context.Background(), "t/2", nil, wait)
			took := time.Since(start)
			if got := sub.Dropped(); got != tt.dropped {
				t.Fatalf("dropped %d, want %d (took %s)", got, tt.dropped, took)
			}
			if tt.readAfter < 0 && took < wait {
				t.Fatalf("gave up after %s, before the %s wait", took, wait)
			}
		})
	}
}

// A subscriber that stopped reading costs one wait, not one per event.
func TestPublishWaitStalledSubscriberIsNotWaitedForAgain(t *testing.T) {
	b := NewLocal()
	stuck := b.Subscribe("t/*", 2)
	defer stuck.Close()
	live := b.Subscribe("t/*", 100)
	defer live.Close()
	ctx := context.Background()
	b.Publish(ctx, "t/0", nil)
	b.Publish(ctx, "t/0", nil)
	b.PublishWait(ctx, "t/1", nil, 100*time.Millisecond) // waits, gives up
	start := time.Now()
	for i := 0; i < 50; i++ {
		b.PublishWait(ctx, "t/2", nil, 100*time.Millisecond)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Fatalf("50 events took %s: each waited for the stalled subscriber", took)
	}
	if got := stuck.Dropped(); got != 51 {
		t.Fatalf("stuck subscriber dropped %d, want 51", got)
	}
	if got := len(live.C); got != 53 {
		t.Fatalf("live subscriber got %d events, want 53", got)
	}
	// Once it drains, it is waited for again.
	<-stuck.C
	<-stuck.C
	b.PublishWait(ctx, "t/3", nil, time.Second)
	b.PublishWait(ctx, "t/3", nil, time.Second)
	go func() { time.Sleep(20 * time.Millisecond); <-stuck.C }()
	b.PublishWait(ctx, "t/4", nil, time.Second)
	if got := stuck.Dropped(); got != 51 {
		t.Fatalf("after draining, dropped %d, want still 51", got)
	}
}
