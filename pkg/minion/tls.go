package minion

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/brine-cm/brine/pkg/pki"
)

// pinningTLS verifies the master by fingerprint rather than by CA: the
// configured master_finger when set, else the fingerprint pinned on first
// contact with that address (Salt's minion_master.pub, by another name).
func (m *Minion) pinningTLS(addr string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate's pin check
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("master sent no certificate")
			}
			got := pki.CertFingerprint(raw[0])
			if want := m.cfg.MasterFinger; want != "" {
				if pki.NormalizeFinger(want) != got {
					return fmt.Errorf("master %s: certificate fingerprint %s does not match master_finger %s", addr, got, pki.NormalizeFinger(want))
				}
				return nil
			}
			return m.checkPin(addr, got)
		},
	}
}

func (m *Minion) pinPath(addr string) string {
	safe := strings.NewReplacer("/", "_", ":", "_", "[", "", "]", "").Replace(addr)
	return filepath.Join(m.cfg.DataDir, "pki", "masters", safe+".finger")
}

func (m *Minion) checkPin(addr, got string) error {
	m.pinMu.Lock()
	defer m.pinMu.Unlock()
	p := m.pinPath(addr)
	b, err := os.ReadFile(p)
	if err == nil {
		if want := strings.TrimSpace(string(b)); want != got {
			return fmt.Errorf("master %s: certificate fingerprint %s differs from the one pinned in %s (%s); if the master was rebuilt, delete that file", addr, got, p, want)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	m.log.Warn("trusting master on first use; set master_finger to verify it", "master", addr, "finger", got)
	return pki.WriteFileAtomic(p, []byte(got+"\n"), 0o600)
}

// captureCreds remembers the TLS state of the connection it made, so the
// minion can bind its proof of key possession to that connection.
type captureCreds struct {
	credentials.TransportCredentials
	mu    *sync.Mutex
	state **tls.ConnectionState
	local *net.Addr
}

func newCaptureCreds(cfg *tls.Config) *captureCreds {
	var st *tls.ConnectionState
	var local net.Addr
	return &captureCreds{TransportCredentials: credentials.NewTLS(cfg), mu: &sync.Mutex{}, state: &st, local: &local}
}

func (c *captureCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ai, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if tc, ok := raw.(*turnConn); ok {
		tc.handshakeDone()
	}
	if err == nil {
		if ti, ok := ai.(credentials.TLSInfo); ok {
			st := ti.State
			c.mu.Lock()
			*c.state = &st
			*c.local = raw.LocalAddr()
			c.mu.Unlock()
		}
	}
	return conn, ai, err
}

func (c *captureCreds) Clone() credentials.TransportCredentials {
	return &captureCreds{TransportCredentials: c.TransportCredentials.Clone(), mu: c.mu, state: c.state, local: c.local}
}

func (c *captureCreds) connState() *tls.ConnectionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.state
}

func (c *captureCreds) localAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.local
}

// clientTurns orders the TLS handshakes of every minion in this process
// (pkg/pki.HandshakeTurns): one for brine-minion, thousands for
// brine-bench's simulated fleet, where a storm of 10,000 otherwise had
// each client crawl through its handshake until the master's 10 s TLS
// deadline (which counts only time spent waiting on the client) cut it.
var clientTurns = pki.NewHandshakeTurns(0)

// turnStall: a client gives up waiting for a turn when none has moved
// for this long.
const turnStall = time.Minute

// dialInTurn connects to the master only when this process has a turn for
// the handshake, so the master's clock for it does not start while the
// client waits behind its siblings. The turn is held while the client
// works and given back while it waits on the master.
func dialInTurn(ctx context.Context, addr string) (net.Conn, error) {
	seq := clientTurns.Next()
	if err := clientTurns.Take(seq, turnStall); err != nil {
		return nil, err
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		clientTurns.Give()
		return nil, err
	}
	return &turnConn{Conn: raw, seq: seq, held: true, inTLS: true}, nil
}

// turnConn takes turns for its reads until its TLS handshake is done.
type turnConn struct {
	net.Conn
	seq   uint64
	mu    sync.Mutex
	held  bool
	inTLS bool
}

func (c *turnConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	tls := c.inTLS
	if c.held {
		c.held = false
		clientTurns.Give()
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	if n > 0 && tls {
		if terr := clientTurns.Take(c.seq, turnStall); terr != nil {
			c.Conn.Close()
			return 0, terr
		}
		c.mu.Lock()
		if c.inTLS {
			c.held = true
		} else {
			clientTurns.Give()
		}
		c.mu.Unlock()
	}
	return n, err
}

// handshakeDone gives back the turn: after TLS a minion costs little.
func (c *turnConn) handshakeDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inTLS = false
	if c.held {
		c.held = false
		clientTurns.Give()
	}
}

func (c *turnConn) Close() error {
	c.handshakeDone()
	return c.Conn.Close()
}
