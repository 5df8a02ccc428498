package job

import (
	"context"
	"log/slog"
	"time"
)

// DefaultPruneEvery is how often StartPruner runs when every <= 0: Salt's
// maintenance process cleans the job cache once per loop_interval (60s).
const DefaultPruneEvery = time.Minute

// StartPruner deletes jobs older than keepJobs (Salt's keep_jobs), once
// at start and then every `every`, until ctx ends. keepJobs <= 0 means
// keep jobs forever, as keep_jobs: 0 does in Salt. The returned channel
// closes when the pruner has stopped.
func StartPruner(ctx context.Context, store Store, keepJobs, every time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if every <= 0 {
		every = DefaultPruneEvery
	}
	log := slog.Default().With("component", "job-pruner", "keep_jobs", keepJobs.String())
	go func() {
		defer close(done)
		if keepJobs <= 0 {
			<-ctx.Done()
			return
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			n, err := store.Prune(ctx, time.Now().Add(-keepJobs))
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("pruning job cache failed", "removed", n, "err", err)
			case n > 0:
				log.Info("pruned job cache", "removed", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return done
}
