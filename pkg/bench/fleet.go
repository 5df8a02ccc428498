package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/minion"
)

// fleet is N real minions (pkg/minion, the code brine-minion runs) in this
// process: each has its own Ed25519 key on disk, its own TLS connection and
// stream, and goes through autosign enrollment and the signed handshake.
type fleet struct {
	minions []*minion.Minion
	retries *retryCounter
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// groupSize is how many minions share an env grain: hosts.sls lists every
// minion of the same env, so the env is the size of one /etc/hosts.
const groupSize = 20

func minionID(i int) string { return fmt.Sprintf("bench-%05d", i) }

// newFleet prepares n minions (keys, grains) without connecting them, in
// parallel: key creation and core grains cost a few ms each.
func newFleet(mp *masterProc, dir string, n int) (*fleet, error) {
	retries := newRetryCounter()
	quiet := slog.New(retries)
	f := &fleet{minions: make([]*minion.Minion, n), retries: retries}
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id := minionID(i)
				cfg := config.DefaultMinion()
				cfg.ID = id
				cfg.Master = config.StringList{mp.minionAddr}
				cfg.MasterFinger = mp.finger
				cfg.AutosignToken = mp.token
				cfg.DataDir = filepath.Join(dir, "minions", id)
				cfg.HostsFile = filepath.Join(cfg.DataDir, "hosts")
				cfg.Grains = map[string]any{
					"roles": []any{"bench"},
					"env":   fmt.Sprintf("e%04d", i/groupSize),
					"bench": map[string]any{"index": i},
				}
				cfg.MineChangePoll = -1 // no interface watching in a simulation
				cfg.JobTimeout = 120
				m, err := minion.New(cfg, quiet)
				if err != nil {
					errs <- fmt.Errorf("minion %s: %w", id, err)
					continue
				}
				f.minions[i] = m
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return f, nil
}

// start runs every minion at once (the storm), or perSec a second, and
// returns immediately.
func (f *fleet) start(ctx context.Context, perSec int) {
	ctx, f.cancel = context.WithCancel(ctx)
	t0 := time.Now()
	for i, m := range f.minions {
		if perSec > 0 {
			if d := time.Until(t0.Add(time.Duration(i) * time.Second / time.Duration(perSec))); d > 0 {
				time.Sleep(d)
			}
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_ = m.Run(ctx)
		}()
	}
}

func (f *fleet) connected() int {
	n := 0
	for _, m := range f.minions {
		if m.Connected() {
			n++
		}
	}
	return n
}

// waitConnected polls until all are connected or d passes.
func (f *fleet) waitConnected(ctx context.Context, mp *masterProc, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		if err := mp.alive(); err != nil {
			return 0, err
		}
		n := f.connected()
		if n == len(f.minions) {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("%d of %d minions connected after %s", n, len(f.minions), d)
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (f *fleet) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}
