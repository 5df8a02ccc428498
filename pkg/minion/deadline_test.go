package minion

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDeadlineCtx: the lazily armed job context behaves as
// context.WithDeadline does, whichever of its methods is used first.
func TestDeadlineCtx(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		use     func(t *testing.T, c *deadlineCtx) error
		want    error
	}{
		{"Done closes at the deadline", 30 * time.Millisecond, func(t *testing.T, c *deadlineCtx) error {
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done never closed")
			}
			return c.Err()
		}, context.DeadlineExceeded},
		{"Err before the deadline", time.Hour, func(t *testing.T, c *deadlineCtx) error { return c.Err() }, nil},
		{"Err after the deadline, Done never asked", 10 * time.Millisecond, func(t *testing.T, c *deadlineCtx) error {
			time.Sleep(30 * time.Millisecond)
			return c.Err()
		}, context.DeadlineExceeded},
		{"stop before any use", time.Hour, func(t *testing.T, c *deadlineCtx) error {
			c.stop()
			select {
			case <-c.Done():
			default:
				t.Fatal("Done open after stop")
			}
			return c.Err()
		}, context.Canceled},
		{"stop after Done was armed", time.Hour, func(t *testing.T, c *deadlineCtx) error {
			done := c.Done()
			c.stop()
			<-done
			return c.Err()
		}, context.Canceled},
		{"a derived WithTimeout ends at the parent's deadline", 30 * time.Millisecond, func(t *testing.T, c *deadlineCtx) error {
			child, cancel := context.WithTimeout(c, time.Hour)
			defer cancel()
			if d, ok := child.Deadline(); !ok || !d.Equal(c.deadline) {
				t.Errorf("child deadline %v %v, want the parent's %v", d, ok, c.deadline)
			}
			select {
			case <-child.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("child never ended")
			}
			return child.Err()
		}, context.DeadlineExceeded},
		{"AfterFunc runs at the deadline", 20 * time.Millisecond, func(t *testing.T, c *deadlineCtx) error {
			ran := make(chan struct{})
			context.AfterFunc(c, func() { close(ran) })
			select {
			case <-ran:
			case <-time.After(5 * time.Second):
				t.Fatal("AfterFunc never ran")
			}
			return c.Err()
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type key struct{}
			parent := context.WithValue(context.Background(), key{}, "v")
			c := newDeadlineCtx(parent, time.Now().Add(tt.timeout))
			defer c.stop()
			if c.Value(key{}) != "v" {
				t.Error("parent's values are not visible")
			}
			if d, ok := c.Deadline(); !ok || d.IsZero() {
				t.Errorf("Deadline() = %v, %v", d, ok)
			}
			if err := tt.use(t, c); !errors.Is(err, tt.want) {
				t.Errorf("Err() = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestDeadlineCtxUnarmed: a job that never looks at its context leaves no
// timer armed (inner stays nil until stop).
func TestDeadlineCtxUnarmed(t *testing.T) {
	c := newDeadlineCtx(context.Background(), time.Now().Add(time.Hour))
	_, _ = c.Deadline()
	_ = c.Value("x")
	if c.inner != nil {
		t.Fatal("Deadline or Value armed a timer")
	}
	c.stop()
	if c.Err() != context.Canceled {
		t.Fatalf("after stop Err = %v", c.Err())
	}
}
