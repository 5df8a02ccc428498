package bench_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/bench"
	"github.com/brine-cm/brine/test/binaries"
)

func TestMain(m *testing.M) {
	code := m.Run()
	binaries.Cleanup()
	os.Exit(code)
}

// TestSmoke runs every scenario at 20 minions against the real programs and
// checks what was counted, never how fast: the generator must connect
// everyone, collect every return, lose no event and turn every hook into a
// job.
func TestSmoke(t *testing.T) {
	bin := binaries.Build(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 20
	dir := t.TempDir()
	rows, err := bench.Run(ctx, bench.Config{
		Minions: n, MasterBin: filepath.Join(bin, "brine-master"), MinionBin: filepath.Join(bin, "brine-minion"),
		StatesDir: "../../states", Dir: dir, Rounds: 3, Events: 2000, Hooks: 50, HookConns: 4,
		IdleFor: 2 * time.Second, Settle: 500 * time.Millisecond, Out: &out,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"connect storm": n, "test.ping fan-out": n, "state.apply hosts": n, "event ingest": 2000,
		"webhook → reactor": 2 * 50, "mine.get grain target": n, "brine-minion idle": 1,
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for _, r := range rows {
		w, ok := want[r.Scenario]
		if !ok {
			t.Errorf("unexpected scenario %q", r.Scenario)
			continue
		}
		if r.Count != w || r.Want != w || r.Lost != 0 {
			t.Errorf("%s: counted %d of %d (want %d), lost %d", r.Scenario, r.Count, r.Want, w, r.Lost)
		}
		if !strings.Contains(out.String(), "| "+r.Scenario+" |") {
			t.Errorf("%s: no table row printed", r.Scenario)
		}
	}
	// hosts.sls really ran and wrote the minion's own entry. (Every
	// simulated minion has this host's address, so peers share one line.)
	hosts, err := os.ReadFile(filepath.Join(dir, "minions", "bench-00000", "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hosts), "127.0.0.1") || !strings.Contains(string(hosts), "bench-00000") {
		t.Errorf("hosts file of bench-00000:\n%s", hosts)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  bench.Config
		want string
	}{
		{"no minions", bench.Config{MasterBin: "x"}, "minions must be positive"},
		{"no master", bench.Config{Minions: 1}, "no brine-master binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bench.Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
