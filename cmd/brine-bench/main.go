// Command brine-bench is the load generator of docs/BENCHMARKS.md: it
// starts a brine-master, connects N real minions to it from this one
// process and prints one markdown table row per scenario.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/brine-cm/brine/pkg/bench"
)

func main() {
	var cfg bench.Config
	var scen, pprofAddr string
	flag.IntVar(&cfg.Minions, "minions", 1000, "simulated minions (one TLS stream each)")
	flag.StringVar(&cfg.MasterBin, "master-bin", "bin/brine-master", "brine-master to start")
	flag.StringVar(&cfg.MinionBin, "minion-bin", "bin/brine-minion", "brine-minion for the idle measurement (empty skips it)")
	flag.StringVar(&cfg.StatesDir, "states", "states", "directory holding hosts.sls")
	flag.StringVar(&cfg.Dir, "dir", "", "work directory (default: a temporary one, removed afterwards)")
	flag.IntVar(&cfg.Rounds, "rounds", 20, "test.ping and mine.get repetitions")
	flag.IntVar(&cfg.Events, "events", 200000, "events sent in the ingest scenario")
	flag.IntVar(&cfg.Hooks, "hooks", 3000, "webhook requests")
	flag.IntVar(&cfg.HookConns, "hook-conns", 16, "concurrent webhook senders")
	flag.DurationVar(&cfg.IdleFor, "idle", time.Minute, "how long the real brine-minion is watched idle")
	flag.DurationVar(&cfg.Settle, "settle", 10*time.Second, "idle time before the master's RSS is read after the storm")
	flag.StringVar(&scen, "scenarios", "", "comma-separated subset of "+strings.Join(bench.Scenarios, ","))
	flag.IntVar(&cfg.Ramp, "ramp", 0, "start this many minions a second instead of all at once")
	flag.StringVar(&pprofAddr, "pprof", "", "serve the generator's /debug/pprof on this address (e.g. 127.0.0.1:6070)")
	flag.Parse()
	if pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "brine-bench: pprof:", http.ListenAndServe(pprofAddr, nil)) }()
	}
	if scen != "" {
		cfg.Scenarios = strings.Split(scen, ",")
	}
	cfg.Out = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rows, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "brine-bench:", err)
		os.Exit(1)
	}
	// Figures never fail a run; something not counted does.
	bad := false
	for _, r := range rows {
		if r.Count < r.Want || r.Lost > 0 {
			fmt.Fprintf(os.Stderr, "brine-bench: %s: counted %d of %d, lost %d\n", r.Scenario, r.Count, r.Want, r.Lost)
			bad = true
		}
	}
	if bad {
		os.Exit(1)
	}
}
