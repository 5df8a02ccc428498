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
	now        func() time.Time
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
	gate := &ConnGate{Conn: raw, burst: g.Burst, rate: g.PerSecond, tokens: float64(g.Burst), last: now(), now: now, onExceeded: g.OnExceeded}
	conn, ai, err := g.TransportCredentials.ServerHandshake(gate)
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
}

// Open lifts the budget: the connection carries an accepted minion.
func (c *ConnGate) Open() { c.open.Store(true) }

// Opened reports whether Open was called.
func (c *ConnGate) Opened() bool { return c.open.Load() }

func (c *ConnGate) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
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
