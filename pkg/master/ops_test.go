package master_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/master"
)

func scrape(t *testing.T, m *master.Master) string {
	t.Helper()
	srv := httptest.NewServer(m.MetricsHandler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestMetricsMoveWhenAJobRuns(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutoAccept = true })
	mn := startMinion(t, "m1", port, filepath.Join(dir, "m1"), nil, nil)
	waitFor(t, "connected", 5*time.Second, mn.Connected)

	before := scrape(t, tm.Master)
	if v := metricValue(t, before, "brine_minions_connected"); v != 1 {
		t.Fatalf("brine_minions_connected = %v\n%s", v, before)
	}
	if v := metricValue(t, before, `brine_keys{state="accepted"}`); v != 1 {
		t.Fatalf("accepted keys gauge = %v", v)
	}
	tm.publish(t, "*", "glob", "test.ping", nil, nil, 5*time.Second)
	tm.publish(t, "*", "glob", "test.sleep", []any{2}, nil, 200*time.Millisecond)
	after := scrape(t, tm.Master)
	for series, want := range map[string]float64{
		"brine_jobs_started_total":               2,
		"brine_jobs_finished_total":              2,
		"brine_jobs_timed_out_total":             1,
		`brine_returns_total{outcome="success"}`: 1,
	} {
		if got := metricValue(t, after, series) - metricValue(t, before, series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	if metricValue(t, after, `brine_events_total{prefix="job"}`) <= metricValue(t, before, `brine_events_total{prefix="job"}`) {
		t.Error("job events not counted")
	}
}

func TestReloadAddsReactorRuleWithoutDroppingMinions(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	mdir := filepath.Join(dir, "master")
	os.MkdirAll(mdir, 0o700)
	reactorFile := filepath.Join(dir, "echo.sls")
	os.WriteFile(reactorFile, []byte("echo:\n  local.test.echo:\n    - tgt: m1\n    - arg:\n      - {{ data['word'] | tojson }}\n"), 0o600)
	cfgPath := filepath.Join(dir, "master.yaml")
	base := fmt.Sprintf("interface: 127.0.0.1\nport: %d\ndata_dir: %s\nauto_accept: true\n", port, mdir)
	os.WriteFile(cfgPath, []byte(base), 0o600)

	cfg, err := config.LoadMaster(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	m, err := master.New(cfg, master.Options{Logger: quietLog(), ConfigPath: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); m.Stop() }()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mn := startMinion(t, "m1", port, filepath.Join(dir, "m1"), nil, nil)
	waitFor(t, "connected", 5*time.Second, mn.Connected)
	sub := m.Bus().Subscribe("job/*/ret/m1", 100)
	defer sub.Close()

	fire := func(word string) {
		if err := m.Bus().Publish(ctx, "app/said", map[string]any{"word": word}); err != nil {
			t.Fatal(err)
		}
	}
	fire("before")
	select {
	case ev := <-sub.C:
		t.Fatalf("reaction before the rule existed: %v", ev)
	case <-time.After(500 * time.Millisecond):
	}

	// A bad config is refused and changes nothing.
	os.WriteFile(cfgPath, []byte(base+"reactor: {not: a list}\n"), 0o600)
	if err := m.Reload(); err == nil {
		t.Fatal("reload accepted a bad reactor config")
	}
	os.WriteFile(cfgPath, []byte(base+fmt.Sprintf("reactor:\n  - 'app/*':\n    - %s\n", reactorFile)), 0o600)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if !mn.Connected() {
		t.Fatal("reload dropped the minion")
	}
	fire("after")
	select {
	case ev := <-sub.C:
		if ev.Data["return"] != "after" {
			t.Fatalf("reaction returned %v", ev.Data["return"])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("rule added by reload never reacted")
	}
}
