package pki

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// ErrPreAuthBudget is the read error of a connection that sent more than
// its budget before authenticating.
var ErrPreAuthBudget = errors.New("connection sent too much before authenticating")

// GatedCreds wraps the master's TLS credentials so that a connection that
// has not authenticated a minion can only cost the master a bounded number
// of bytes: gRPC would otherwise buffer a Hello of up to the port's message
// limit (64 MiB) from anyone who can open a socket. The budget is a token
// bucket so that a pending minion's keepalive pings, which go on for as
// long as the operator takes to review its key, never run it dry.
type GatedCreds struct {
	credentials.TransportCredentials
	Burst      int64  // bytes a connection may send before its gate opens
	PerSecond  int64  // bytes refilled each second
	OnExceeded func() // counts connections closed for their budget
	// HandshakeTurns is how many connections may do TLS handshake work at
	// once (see handshakeTurns); 0 is DefaultHandshakeTurns. Turns are
	// shared by every clone.
	HandshakeTurns int
	// TLSTimeout is how long a client may take over its TLS handshake and
	// HTTP/2 preface, counting only time the master waits on it (not time
	// waiting for a turn or working in one); 0 is 10 s. It replaces
	// grpc.ConnectionTimeout's deadline on the connection.
	TLSTimeout time.Duration
	now        func() time.Time
	turns      *handshakeTurns
}

var turnsMu sync.Mutex

func (g *GatedCreds) handshakeTurns() *handshakeTurns {
	turnsMu.Lock()
	defer turnsMu.Unlock()
	if g.turns == nil {
		g.turns = newHandshakeTurns(g.HandshakeTurns)
	}
	return g.turns
}

func (g *GatedCreds) tlsTimeout() time.Duration {
	if g.TLSTimeout > 0 {
		return g.TLSTimeout
	}
	return 10 * time.Second
}

// GatedAuthInfo is the AuthInfo of a gated connection: the TLS state, and
// the gate the server opens once a minion on it is accepted.
type GatedAuthInfo struct {
	credentials.TLSInfo
	Gate *ConnGate
}

// ServerHandshake counts the raw bytes of the TLS handshake too: a client
// that never finishes it is bounded by the same budget.
func (g *GatedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	now := g.now
	if now == nil {
		now = time.Now
	}
	turns := g.handshakeTurns()
	gate := &ConnGate{Conn: raw, burst: g.Burst, rate: g.PerSecond, tokens: float64(g.Burst), last: now(), now: now, onExceeded: g.OnExceeded,
		turns: turns, seq: turns.next(), stall: g.tlsTimeout()}
	gate.inTLS.Store(true)
	gate.SetDeadline(time.Now().Add(g.tlsTimeout()))
	conn, ai, err := g.TransportCredentials.ServerHandshake(gate)
	gate.tlsDone()
	if err != nil {
		return nil, nil, err
	}
	ti, ok := ai.(credentials.TLSInfo)
	if !ok {
		conn.Close()
		return nil, nil, fmt.Errorf("gated credentials: %T is not TLS", ai)
	}
	return conn, GatedAuthInfo{TLSInfo: ti, Gate: gate}, nil
}

// Clone keeps the budget.
func (g *GatedCreds) Clone() credentials.TransportCredentials {
	g.handshakeTurns() // made before the copy, so that the clone shares it
	c := *g
	c.TransportCredentials = g.TransportCredentials.Clone()
	return &c
}

// ConnGate is a net.Conn whose reads draw on a byte budget until Open.
type ConnGate struct {
	net.Conn
	open       atomic.Bool
	mu         sync.Mutex
	burst      int64
	rate       int64
	tokens     float64
	last       time.Time
	now        func() time.Time
	onExceeded func()
	tripped    bool

	// Until its TLS handshake ends, a connection works on what it read
	// only in its turn (handshakeTurns), and its deadline counts only the
	// time it waits on its client: not the time it waits for a turn, nor
	// the master's own work in one.
	turns    *handshakeTurns
	seq      uint64
	stall    time.Duration
	inTLS    atomic.Bool // still in the TLS handshake
	turnMu   sync.Mutex
	hasTurn  bool
	limited  bool          // a deadline is set
	clientOK time.Duration // how much more the client may take
}

// SetDeadline sets the time the client has left from now on.
func (c *ConnGate) SetDeadline(t time.Time) error {
	c.setClientTime(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline: as SetDeadline.
func (c *ConnGate) SetReadDeadline(t time.Time) error {
	c.setClientTime(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *ConnGate) setClientTime(t time.Time) {
	c.turnMu.Lock()
	c.limited = !t.IsZero()
	c.clientOK = time.Until(t)
	c.turnMu.Unlock()
}

// awaitClient gives back the connection's turn, if it holds one, and arms
// the deadline with the client's remaining time, before it waits on the
// network. It returns when the wait began.
func (c *ConnGate) awaitClient() time.Time {
	c.turnMu.Lock()
	held := c.hasTurn
	c.hasTurn = false
	now := time.Now()
	if c.limited {
		c.Conn.SetDeadline(now.Add(c.clientOK))
	}
	c.turnMu.Unlock()
	if held {
		c.turns.give()
	}
	return now
}

// charge counts a network wait that began at start against the client.
func (c *ConnGate) charge(start time.Time) {
	c.turnMu.Lock()
	c.clientOK -= time.Since(start)
	c.turnMu.Unlock()
}

// takeTurn waits for a turn to work on bytes just read.
func (c *ConnGate) takeTurn() error {
	if err := c.turns.take(c.seq, c.stall); err != nil {
		return err
	}
	c.turnMu.Lock()
	defer c.turnMu.Unlock()
	if !c.inTLS.Load() { // ended meanwhile (Close)
		c.turns.give()
		return net.ErrClosed
	}
	c.hasTurn = true
	return nil
}

// tlsDone ends the turn-taking: after its TLS handshake a connection's
// reads cost the master little. The client keeps the time it has left
// (for the HTTP/2 preface, until gRPC clears the deadline).
func (c *ConnGate) tlsDone() {
	if !c.inTLS.Swap(false) {
		return
	}
	c.turnMu.Lock()
	held := c.hasTurn
	c.hasTurn = false
	if c.limited {
		c.Conn.SetDeadline(time.Now().Add(c.clientOK))
	}
	c.turnMu.Unlock()
	if held {
		c.turns.give()
	}
}

// Close gives back a turn the connection holds.
func (c *ConnGate) Close() error {
	c.tlsDone()
	return c.Conn.Close()
}

// Write charges the client for a write only while it blocks.
func (c *ConnGate) Write(p []byte) (int, error) {
	if !c.inTLS.Load() {
		return c.Conn.Write(p)
	}
	start := c.awaitClient()
	n, err := c.Conn.Write(p)
	c.charge(start)
	return n, err
}

// Open lifts the budget: the connection carries an accepted minion.
func (c *ConnGate) Open() { c.open.Store(true) }

// Opened reports whether Open was called.
func (c *ConnGate) Opened() bool { return c.open.Load() }

func (c *ConnGate) Read(p []byte) (int, error) {
	if !c.inTLS.Load() {
		return c.budgeted(c.Conn.Read(p))
	}
	start := c.awaitClient()
	n, err := c.Conn.Read(p)
	c.charge(start)
	if n > 0 {
		if terr := c.takeTurn(); terr != nil {
			c.Conn.Close()
			return 0, terr
		}
	}
	return c.budgeted(n, err)
}

// budgeted draws a read of n bytes from the pre-authentication budget.
func (c *ConnGate) budgeted(n int, err error) (int, error) {
	if n <= 0 || c.open.Load() {
		return n, err
	}
	c.mu.Lock()
	t := c.now()
	c.tokens += t.Sub(c.last).Seconds() * float64(c.rate)
	if c.tokens > float64(c.burst) {
		c.tokens = float64(c.burst)
	}
	c.last = t
	c.tokens -= float64(n)
	over := c.tokens < 0
	first := over && !c.tripped
	if over {
		c.tripped = true
	}
	c.mu.Unlock()
	if over {
		if first && c.onExceeded != nil {
			c.onExceeded()
		}
		c.Conn.Close()
		return 0, ErrPreAuthBudget
	}
	return n, err
}
