package master_test

import (
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
)

// blackholeProxy forwards TCP to target until Blackhole is called; from
// then on bytes from the client are read and thrown away while the
// connection stays open, like a peer that died without a FIN. Reset closes
// every connection and goes back to forwarding.
type blackholeProxy struct {
	ln     net.Listener
	target string
	hole   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackholeProxy(t testing.TB, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.Reset() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { // client -> master, unless blackholed
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						u.Close()
						return
					}
					if !p.hole.Load() {
						u.Write(buf[:n])
					}
				}
			}()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *blackholeProxy) Blackhole() { p.hole.Store(true) }

func (p *blackholeProxy) Reset() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.hole.Store(false)
}

// A return written into a connection that silently died is not lost: the
// master never acknowledged it, so the minion resends it after reconnecting.
func TestReturnSentIntoDeadConnectionIsResent(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutoAccept = true })
	proxy := newBlackholeProxy(t, "127.0.0.1:"+strconv.Itoa(port))
	_, pport, _ := net.SplitHostPort(proxy.ln.Addr().String())
	pp, _ := strconv.Atoi(pport)
	mn := startMinion(t, "m1", pp, filepath.Join(dir, "m1"), nil, nil)
	waitFor(t, "connected through the proxy", 5*time.Second, mn.Connected)

	// The job is delivered; while it runs, the minion's upstream dies silently.
	p := tm.publish(t, "m1", "glob", "test.sleep", []any{0.5}, nil, 200*time.Millisecond)
	jid := p.started.GetJid()
	proxy.Blackhole()
	waitFor(t, "the return sent and waiting for its ack", 5*time.Second, func() bool { return mn.Unacked() == 1 })
	time.Sleep(200 * time.Millisecond)
	show := tm.runner(t, "job.show", []any{jid}, nil).(map[string]any)
	if len(show["returns"].(map[string]any)) != 0 {
		t.Fatalf("return arrived through a blackhole: %v", show)
	}
	proxy.Reset() // the dead connection is noticed; the minion reconnects
	waitFor(t, "return recorded after reconnect", 10*time.Second, func() bool {
		show := tm.runner(t, "job.show", []any{jid}, nil).(map[string]any)
		r, ok := show["returns"].(map[string]any)["m1"].(map[string]any)
		return ok && r["return"] == true
	})
	waitFor(t, "acknowledged", 5*time.Second, func() bool { return mn.Unacked() == 0 })
}
