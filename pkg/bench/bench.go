// Package bench is brine-bench's load generator: it starts a real
// brine-master process, runs thousands of real minions (pkg/minion, each
// with its own key, TLS connection and authenticated stream) in this
// process, and measures the scenarios of docs/BENCHMARKS.md, one table row
// each.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config is one benchmark run.
type Config struct {
	Minions   int    // simulated minions
	MasterBin string // brine-master to start
	MinionBin string // brine-minion for the idle measurement; "" skips it
	StatesDir string // holds hosts.sls (the repository's states/)
	Dir       string // work directory; a temporary one when empty
	Rounds    int    // test.ping and mine.get repetitions
	Events    int    // events in the ingest scenario, across all minions
	Hooks     int    // webhook requests
	HookConns int    // concurrent webhook senders
	IdleFor   time.Duration
	Settle    time.Duration // idle time before the "after" RSS is read
	Ramp      int           // minions started per second; 0 starts all at once (the storm)
	Scenarios []string      // subset to run; empty runs all
	Out       io.Writer     // table rows as they are measured
	KeepDir   bool
}

// Row is one scenario's outcome.
type Row struct {
	Scenario string
	N        int
	Figure   string // the headline number, with its unit
	Detail   string // what else was measured
	Load     string // 1/5/15-minute load average when it ended
	Count    int    // what was counted (returns, events, hooks ...)
	Want     int    // what was expected
	Lost     int    // events or hooks that never arrived
	Values   []float64
}

// Scenario names, in the order they run.
var Scenarios = []string{"connect", "ping", "hosts", "events", "webhook", "mine", "idle"}

func (c *Config) defaults() error {
	if c.Minions <= 0 {
		return errors.New("bench: minions must be positive")
	}
	if c.MasterBin == "" {
		return errors.New("bench: no brine-master binary given")
	}
	if c.Rounds <= 0 {
		c.Rounds = 20
	}
	if c.Events <= 0 {
		c.Events = 200_000
	}
	if c.Hooks <= 0 {
		c.Hooks = 3000
	}
	if c.HookConns <= 0 {
		c.HookConns = 16
	}
	if c.IdleFor <= 0 {
		c.IdleFor = time.Minute
	}
	if c.Settle <= 0 {
		c.Settle = 10 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return nil
}

func (c *Config) wants(s string) bool {
	if len(c.Scenarios) == 0 {
		return true
	}
	for _, x := range c.Scenarios {
		if x == s {
			return true
		}
	}
	return false
}

// Header is the markdown table head Run prints before the rows.
const Header = "| scenario | minions | result | detail | load avg |\n|---|---|---|---|---|\n"

// Run performs the scenarios against a fresh master and returns their rows.
// The connect storm always runs: every other scenario needs the fleet.
func Run(ctx context.Context, cfg Config) ([]Row, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "brine-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench dir: %w", err)
		}
		dir = d
		if !cfg.KeepDir {
			defer os.RemoveAll(dir)
		}
	}
	mp, err := startMaster(ctx, cfg.MasterBin, dir, cfg.StatesDir, minionID(0))
	if err != nil {
		return nil, err
	}
	defer mp.stop()
	f, err := newFleet(mp, dir, cfg.Minions)
	if err != nil {
		return nil, err
	}
	defer f.stop()

	fmt.Fprint(cfg.Out, Header)
	var rows []Row
	emit := func(r Row) {
		r.Load = loadAvg()
		rows = append(rows, r)
		fmt.Fprintf(cfg.Out, "| %s | %d | %s | %s | %s |\n", r.Scenario, r.N, r.Figure, r.Detail, r.Load)
	}
	r, err := connectStorm(ctx, &cfg, mp, f)
	if err != nil {
		return rows, err
	}
	emit(r)
	steps := []struct {
		name string
		fn   func(context.Context, *Config, *masterProc, *fleet) (Row, error)
	}{
		{"ping", pingFanout}, {"hosts", hostsApply}, {"events", eventIngest},
		{"webhook", webhookReactor}, {"mine", mineGet}, {"idle", func(ctx context.Context, c *Config, mp *masterProc, _ *fleet) (Row, error) {
			return minionIdle(ctx, c, mp, filepath.Join(dir, "real-minion"))
		}},
	}
	for _, s := range steps {
		if !cfg.wants(s.name) || (s.name == "idle" && cfg.MinionBin == "") {
			continue
		}
		r, err := s.fn(ctx, &cfg, mp, f)
		if err != nil {
			return rows, fmt.Errorf("scenario %s: %w", s.name, err)
		}
		emit(r)
	}
	return rows, nil
}

// percentile of sorted values (nearest rank).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func pctls(v []float64) (p50, p99 float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return percentile(s, 50), percentile(s, 99)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
