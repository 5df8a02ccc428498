package minion

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
)

// TestMineChangePollNegativeTurnsDetectionOff: mine_change_poll < 0 must
// reach the scheduler (which then starts no watcher and no netlink
// socket); it used to be dropped, so a load generator's thousands of
// simulated minions each opened a netlink socket.
func TestMineChangePollNegativeTurnsDetectionOff(t *testing.T) {
	for _, tc := range []struct {
		poll float64
		want time.Duration
	}{{-1, -time.Second}, {5, 5 * time.Second}} {
		cfg := config.DefaultMinion()
		cfg.ID = "poll-minion"
		cfg.Master = []string{"127.0.0.1:1"}
		cfg.DataDir = filepath.Join(t.TempDir(), "data")
		cfg.MineChangePoll = tc.poll
		m, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if m.mine.ChangePoll != tc.want {
			t.Errorf("mine_change_poll %v: scheduler ChangePoll %v, want %v", tc.poll, m.mine.ChangePoll, tc.want)
		}
	}
}
