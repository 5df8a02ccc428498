package master

import (
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
)

// handshakeLimiter bounds how many TLS handshakes run at once. In a
// reconnect storm (a master restart with 10,000 minions) every handshake
// otherwise progresses at the same crawl, all of them pass the handshake
// timeout, and all retry: brine-bench saw 143 of 10,000 minions connected
// after ten minutes. Queued, each handshake finishes in milliseconds and
// the ones that wait too long retry later, with the minions' backoff.
type handshakeLimiter struct {
	credentials.TransportCredentials
	slots chan struct{}
	wait  time.Duration
}

func newHandshakeLimiter(c credentials.TransportCredentials, n int, wait time.Duration) *handshakeLimiter {
	return &handshakeLimiter{TransportCredentials: c, slots: make(chan struct{}, n), wait: wait}
}

func (l *handshakeLimiter) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
	case <-t.C:
		return nil, nil, fmt.Errorf("tls handshake from %s: %d handshakes already in progress for %s", raw.RemoteAddr(), cap(l.slots), l.wait)
	}
	defer func() { <-l.slots }()
	return l.TransportCredentials.ServerHandshake(raw)
}

func (l *handshakeLimiter) Clone() credentials.TransportCredentials {
	// Clones share the slots: the limit is the process's.
	return &handshakeLimiter{TransportCredentials: l.TransportCredentials.Clone(), slots: l.slots, wait: l.wait}
}
