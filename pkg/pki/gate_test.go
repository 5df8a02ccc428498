package pki

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestConnGateBudget drives a ConnGate with a fake clock: reads draw on
// the burst, time refills it, a read past it closes the connection once
// and counts once, and Open lifts the budget.
func TestConnGateBudget(t *testing.T) {
	type step struct {
		advance time.Duration
		write   int
		open    bool
		wantErr bool
	}
	cases := []struct {
		name      string
		burst     int64
		rate      int64
		steps     []step
		wantTrips int
	}{
		{"within burst", 100, 0, []step{{write: 60}, {write: 40}}, 0},
		{"past burst", 100, 0, []step{{write: 60}, {write: 41, wantErr: true}}, 1},
		{"refilled by time", 100, 10, []step{{write: 100}, {advance: 5 * time.Second, write: 50}}, 0},
		{"refill capped at burst", 100, 10, []step{{advance: time.Hour, write: 101, wantErr: true}}, 1},
		{"opened", 100, 0, []step{{write: 100}, {open: true, write: 1000}, {write: 1000}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			now := time.Unix(0, 0)
			trips := 0
			g := &ConnGate{Conn: server, burst: tc.burst, rate: tc.rate, tokens: float64(tc.burst), last: now,
				now: func() time.Time { return now }, onExceeded: func() { trips++ }}
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				if s.open {
					g.Open()
				}
				go client.Write(make([]byte, s.write))
				buf := make([]byte, s.write)
				got := 0
				var err error
				for got < s.write && err == nil {
					var n int
					n, err = g.Read(buf[got:])
					got += n
				}
				if s.wantErr != (err != nil) {
					t.Fatalf("step %d: err %v, want error %v", i, err, s.wantErr)
				}
				if err != nil {
					if !errors.Is(err, ErrPreAuthBudget) {
						t.Fatalf("step %d: %v", i, err)
					}
					if _, err := g.Read(buf); err == nil {
						t.Fatalf("read after the budget ran out succeeded")
					}
					break
				}
			}
			if trips != tc.wantTrips {
				t.Fatalf("onExceeded called %d times, want %d", trips, tc.wantTrips)
			}
		})
	}
}
