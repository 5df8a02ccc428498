package file

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteInPlace: the bind-mount fallback overwrites from the start and
// cuts to the new length (no O_TRUNC, so a crash cannot leave an empty
// file), keeping the inode; shorter and longer contents both come out
// exact.
func TestWriteInPlace(t *testing.T) {
	for _, tc := range []struct{ name, old, new string }{
		{"shrinks", "127.0.0.1 localhost\n198.18.0.11 web1 web1.example\n198.18.0.12 web2\n", "127.0.0.1 localhost\n"},
		{"grows", "127.0.0.1 localhost\n", "127.0.0.1 localhost\n198.18.0.11 web1\n198.18.0.12 web2\n"},
		{"empties", "127.0.0.1 localhost\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hosts")
			if err := os.WriteFile(p, []byte(tc.old), 0o644); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(p)
			if err := writeInPlace(p, []byte(tc.new)); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.new {
				t.Errorf("content %q, want %q", got, tc.new)
			}
			after, _ := os.Stat(p)
			if !os.SameFile(before, after) {
				t.Error("the file was replaced, not rewritten in place (a bind mount would have been lost)")
			}
		})
	}
}
