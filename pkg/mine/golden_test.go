package mine

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// The mine file is an on-disk format a later master (or a migration to a
// JetStream KV) must read: pin it.
func TestFileFormatGolden(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mine.json")
	s, err := NewMemStore(path)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.now = clk.now
	if _, err := s.Put(ctx, "web1", map[string]any{
		"network.ip_addrs": []string{"198.18.0.11"},
		"ca_cert":          Encode("-----BEGIN CERTIFICATE-----", "role:web", "grain"),
	}, nil, true); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	if _, err := s.Put(ctx, "db1", map[string]any{"grains.item": map[string]any{"os": "Debian", "num_cpus": 2}}, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "mine.golden.json")
	if *updateGolden {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("mine file differs from %s\n got: %s\nwant: %s", golden, got, want)
	}
}
