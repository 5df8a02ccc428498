package master

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSaveGrainsSkipsUnchanged: a reconnect with the same grains leaves the
// cache file alone (same inode), new grains replace it.
func TestSaveGrainsSkipsUnchanged(t *testing.T) {
	m := &Master{log: slog.New(slog.DiscardHandler)}
	m.cfg.DataDir = t.TempDir()
	if err := os.MkdirAll(filepath.Dir(m.grainsPath("web1")), 0o700); err != nil {
		t.Fatal(err)
	}
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(m.grainsPath("web1"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	m.saveGrains("web1", map[string]any{"os": "Debian", "roles": []any{"web"}})
	first := inode()
	m.saveGrains("web1", map[string]any{"roles": []any{"web"}, "os": "Debian"})
	if got := inode(); got != first {
		t.Fatalf("unchanged grains rewrote the cache file (inode %d -> %d)", first, got)
	}
	m.saveGrains("web1", map[string]any{"os": "Debian", "roles": []any{"web", "db"}})
	if got := inode(); got == first {
		t.Fatal("changed grains did not replace the cache file")
	}
	if got := m.loadGrainsCache()["web1"]["roles"]; len(got.([]any)) != 2 {
		t.Fatalf("cache holds %v, want the new roles", got)
	}
}
