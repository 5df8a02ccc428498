package pki

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// TestHandshakeTurnsOldestFirst: with every turn taken, waiting
// connections are served by connection age, not by when they asked.
func TestHandshakeTurnsOldestFirst(t *testing.T) {
	cases := []struct {
		name   string
		turns  int
		askers []uint64 // seqs, in the order they start waiting
		want   []uint64
	}{
		{"reverse", 1, []uint64{5, 4, 3, 2}, []uint64{2, 3, 4, 5}},
		{"shuffled", 2, []uint64{9, 3, 7, 4, 8}, []uint64{3, 4, 7, 8, 9}},
		{"in order", 3, []uint64{2, 3, 4}, []uint64{2, 3, 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := newHandshakeTurns(tc.turns)
			for range tc.turns {
				if err := q.take(1, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			var order []uint64
			var wg sync.WaitGroup
			for i, seq := range tc.askers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := q.take(seq, time.Minute); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					order = append(order, seq)
					mu.Unlock()
					q.give()
				}()
				waitWaiting(t, q, i+1)
			}
			// One turn comes back: it passes from waiter to waiter, each
			// time to the oldest one left.
			q.give()
			wg.Wait()
			if fmt.Sprint(order) != fmt.Sprint(tc.want) {
				t.Fatalf("served %v, want %v", order, tc.want)
			}
			for range tc.turns - 1 {
				q.give()
			}
			if q.active != 0 {
				t.Fatalf("%d turns still out", q.active)
			}
		})
	}
}

func waitWaiting(t *testing.T, q *handshakeTurns, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		q.mu.Lock()
		got := q.waiting.Len()
		q.mu.Unlock()
		if got >= n {
			return
		}
	}
	t.Fatalf("never %d waiting", n)
}

// TestHandshakeTurnsStall: a waiter gives up only when no turn comes back
// for the stall time, however long it has waited in all.
func TestHandshakeTurnsStall(t *testing.T) {
	q := newHandshakeTurns(1)
	if err := q.take(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Turns keep moving (taken and given back by older connections) for
	// three stall periods: the waiter keeps waiting.
	stop := make(chan struct{})
	moved := make(chan struct{})
	go func() {
		defer close(moved)
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
			q.mu.Lock()
			q.moved = time.Now()
			q.mu.Unlock()
		}
		<-stop
	}()
	start := time.Now()
	err := q.take(2, 100*time.Millisecond)
	close(stop)
	<-moved
	if !errors.Is(err, ErrHandshakeStalled) {
		t.Fatalf("take: %v, want ErrHandshakeStalled", err)
	}
	if waited := time.Since(start); waited < 350*time.Millisecond {
		t.Fatalf("gave up after %s although turns moved for 300 ms", waited)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.waiting.Len() != 0 || q.active != 1 {
		t.Fatalf("after giving up: %d waiting, %d active; want 0, 1", q.waiting.Len(), q.active)
	}
}

// slowHandshake stands in for TLS: two rounds, each a message from the
// client followed by CPU work on the server. It reads through the
// connection it is given, as crypto/tls does.
type slowHandshake struct {
	credentials.TransportCredentials
	work func()
}

func (s slowHandshake) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	buf := make([]byte, 16)
	for round := range 2 {
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, nil, fmt.Errorf("round %d: %w", round, err)
		}
		s.work()
		if _, err := c.Write(buf); err != nil {
			return nil, nil, err
		}
	}
	return c, credentials.TLSInfo{}, nil
}

// TestHandshakeStormWithinDeadline is the reconnect storm in small: n
// clients at once, each handshake needing CPU work, and a deadline per
// connection that the whole storm's work would exceed twice over
// if every handshake got an n-th of the CPU (which is what the master did
// before: brine-bench's 10,000-minion storm timed out every handshake; with
// that gate, 2 to 64 of these 100 finished). In turns, with a deadline
// that charges a connection only for the time it waits on its client,
// every handshake finishes.
func TestHandshakeStormWithinDeadline(t *testing.T) {
	const n = 100
	deadline := 500 * time.Millisecond
	// Calibrate the work so the storm's total CPU is 2 deadlines even if
	// every core worked on it.
	unit := func() {
		var b [4096]byte
		for range 16 {
			s := sha256.Sum256(b[:])
			b[0] = s[0]
		}
	}
	start := time.Now()
	for range 100 {
		unit()
	}
	per := time.Since(start) / 100
	total := 2 * deadline * time.Duration(runtime.GOMAXPROCS(0))
	reps := int(total/(2*n)/per) + 1
	work := func() {
		for range reps {
			unit()
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gc := &GatedCreds{TransportCredentials: slowHandshake{work: work}, Burst: 1 << 20, PerSecond: 1 << 10,
		HandshakeTurns: runtime.GOMAXPROCS(0), TLSTimeout: deadline}
	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	var served sync.WaitGroup
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			served.Add(1)
			go func() {
				defer served.Done()
				defer raw.Close()
				if _, _, err := gc.ServerHandshake(raw); err != nil {
					failed.Add(1)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
				ok.Add(1)
			}()
		}
	}()
	var clients sync.WaitGroup
	for range n {
		clients.Add(1)
		go func() {
			defer clients.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 16)
			for range 2 {
				if _, err := c.Write(buf); err != nil {
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
			}
		}()
	}
	clients.Wait()
	ln.Close()
	served.Wait()
	if ok.Load() != n {
		t.Fatalf("%d of %d handshakes finished, %d failed (first: %v); work %s per round", ok.Load(), n, failed.Load(), firstErr, time.Duration(reps)*per)
	}
}

// TestTLSDeadlineCountsOnlyTheClient: the TLS deadline is the client's
// time. A connection that waits long for a turn behind a busy master
// still completes; a client that stops sending is still cut after the
// deadline.
func TestTLSDeadlineCountsOnlyTheClient(t *testing.T) {
	cases := []struct {
		name       string
		hold       time.Duration // older connections keep the only turn busy this long
		clientStop bool          // the client sends its first message only
		wantErr    bool
	}{
		{"waits for a turn past the deadline", 800 * time.Millisecond, false, false},
		{"client stalls", 0, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const deadline = 300 * time.Millisecond
			gc := &GatedCreds{TransportCredentials: slowHandshake{work: func() {}}, Burst: 1 << 20, PerSecond: 1 << 10,
				HandshakeTurns: 1, TLSTimeout: deadline}
			turns := gc.handshakeTurns()
			// Older connections (seq 0) come first; they take the turn in
			// 50 ms slices, so turns keep moving and nobody stalls.
			const slice = 50 * time.Millisecond
			var busy sync.WaitGroup
			if tc.hold > 0 {
				if err := turns.take(0, time.Minute); err != nil {
					t.Fatal(err)
				}
				for range 4 {
					busy.Add(1)
					go func() {
						defer busy.Done()
						for range int(tc.hold/slice) / 4 {
							if err := turns.take(0, time.Minute); err != nil {
								t.Error(err)
								return
							}
							time.Sleep(slice)
							turns.give()
						}
					}()
				}
				time.Sleep(10 * time.Millisecond)
				turns.give()
			}
			defer busy.Wait()
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				buf := make([]byte, 16)
				client.Write(buf)
				if tc.clientStop {
					return
				}
				io.ReadFull(client, buf)
				client.Write(buf)
				io.ReadFull(client, buf)
			}()
			start := time.Now()
			_, _, err := gc.ServerHandshake(server)
			took := time.Since(start)
			if (err != nil) != tc.wantErr {
				t.Fatalf("handshake after %s: err %v, want error %v", took, err, tc.wantErr)
			}
			if tc.wantErr && (took < deadline || took > deadline+time.Second) {
				t.Fatalf("stalled client cut after %s, want about %s", took, deadline)
			}
			if !tc.wantErr && took < 2*deadline {
				t.Fatalf("finished after %s: older connections did not keep it waiting past its %s deadline", took, deadline)
			}
		})
	}
}
