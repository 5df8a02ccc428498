package minion

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/pki"
)

// TestClientTurnsNotLeaked: every way a client handshake ends (done, the
// server hanging up in the middle, the server never answering until the
// client gives up) gives its turn back. A leaked turn is one less for every
// later minion of the process, and enough of them stop all connecting.
func TestClientTurnsNotLeaked(t *testing.T) {
	cert, err := pki.LoadOrCreateMasterCert(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		serve   func(net.Conn)
		wantErr bool
	}{
		{"handshake done", func(c net.Conn) {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}})
			tc.Handshake()
			io.Copy(io.Discard, tc)
		}, false},
		{"server hangs up", func(c net.Conn) {
			c.Read(make([]byte, 64))
			c.Close()
		}, true},
		{"server silent", func(c net.Conn) {
			io.Copy(io.Discard, c)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { defer c.Close(); tc.serve(c) }()
				}
			}()
			const n = 50
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
					defer cancel()
					raw, err := dialInTurn(ctx, ln.Addr().String())
					if err != nil {
						t.Error(err)
						return
					}
					creds := newCaptureCreds(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
					conn, _, err := creds.ClientHandshake(ctx, "brine-master", raw)
					if (err != nil) != tc.wantErr {
						t.Errorf("handshake: %v, want error %v", err, tc.wantErr)
					}
					if conn != nil {
						conn.Close()
					} else {
						raw.Close()
					}
				}()
			}
			wg.Wait()
			if held := clientTurns.Held(); held != 0 {
				t.Fatalf("%d client turns still held after %d handshakes", held, n)
			}
		})
	}
}
