package minion_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/master"
	"github.com/brine-cm/brine/pkg/minion"
)

// reconnects counts the minions' "disconnected from master" records.
type reconnects struct{ n atomic.Int64 }

func (r *reconnects) Enabled(context.Context, slog.Level) bool { return true }
func (r *reconnects) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *reconnects) WithGroup(string) slog.Handler            { return r }
func (r *reconnects) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "disconnected from master" {
		r.n.Add(1)
	}
	return nil
}

func startStormMaster(t *testing.T, dir string, port int) (*master.Master, context.CancelFunc) {
	t.Helper()
	cfg := config.DefaultMaster()
	cfg.Interface = "127.0.0.1"
	cfg.Port = port
	cfg.DataDir = dir
	cfg.Socket = filepath.Join(dir, "control.sock")
	cfg.AutoAccept = true
	cfg.LogLevel = "error"
	m, err := master.New(cfg, master.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	return m, func() { cancel(); m.Stop() }
}

// TestStormAndMasterRestart starts a few hundred real minions at once
// against a real master (TLS, signed handshake, enrollment), then restarts
// the master under them, as an upgrade would. Every minion must be
// connected after each, and the first storm must need no retry at all:
// the master serves handshakes in turns instead of timing them all out.
func TestStormAndMasterRestart(t *testing.T) {
	const n = 200
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	mdir := filepath.Join(dir, "master")
	m, stop := startStormMaster(t, mdir, port)
	defer func() { stop() }()

	var retries reconnects
	log := slog.New(&retries)
	minions := make([]*minion.Minion, n)
	var prep sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		prep.Add(1)
		go func() {
			defer prep.Done()
			cfg := config.DefaultMinion()
			cfg.ID = fmt.Sprintf("storm-%03d", i)
			cfg.Master = config.StringList{fmt.Sprintf("127.0.0.1:%d", port)}
			cfg.MasterFinger = m.Fingerprint()
			cfg.DataDir = filepath.Join(dir, "minions", cfg.ID)
			cfg.HostsFile = filepath.Join(cfg.DataDir, "hosts")
			cfg.MineChangePoll = -1
			cfg.ReconDefault = 200
			cfg.ReconMax = 2000
			mn, err := minion.New(cfg, log)
			if err != nil {
				errs <- err
				return
			}
			minions[i] = mn
		}()
	}
	prep.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	defer func() { cancel(); running.Wait() }()
	start := time.Now()
	for _, mn := range minions {
		running.Add(1)
		go func() { defer running.Done(); mn.Run(ctx) }()
	}
	waitAll := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			up := 0
			for _, mn := range minions {
				if mn.Connected() {
					up++
				}
			}
			if up == n {
				t.Logf("%s: %d connected after %s, %d reconnects so far", what, n, time.Since(start).Round(time.Millisecond), retries.n.Load())
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d connected after 60 s (%d reconnects)", what, up, n, retries.n.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAll("storm")
	if r := retries.n.Load(); r != 0 {
		t.Fatalf("the storm took %d reconnects; every handshake should have gone through the first time", r)
	}

	stop()
	for _, mn := range minions {
		for deadline := time.Now().Add(30 * time.Second); mn.Connected(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s still connected to a stopped master", mn.ID())
			}
		}
	}
	start = time.Now()
	m, stop = startStormMaster(t, mdir, port)
	waitAll("after a master restart")
}
