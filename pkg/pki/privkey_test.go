package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadOrCreateEd25519RefusesExposedKey: a private key any group or
// other bit is set on is refused, naming the file, its mode and the fix;
// owner-only modes load; a new key is created 0600.
func TestLoadOrCreateEd25519RefusesExposedKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pki", "minion.key")
	first, err := LoadOrCreateEd25519(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new key mode %04o", fi.Mode().Perm())
	}
	for _, tc := range []struct {
		mode   os.FileMode
		refuse bool
	}{
		{0o600, false}, {0o400, false}, {0o700, false},
		{0o640, true}, {0o604, true}, {0o644, true}, {0o660, true}, {0o602, true}, {0o610, true}, {0o601, true}, {0o777, true},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			k, err := LoadOrCreateEd25519(path)
			if !tc.refuse {
				if err != nil || !k.Equal(first) {
					t.Fatalf("mode %04o: %v", tc.mode, err)
				}
				return
			}
			if !errors.Is(err, ErrKeyExposed) || !strings.Contains(err.Error(), path) ||
				!strings.Contains(err.Error(), fmt.Sprintf("%04o", tc.mode)) || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("mode %04o: %v", tc.mode, err)
			}
		})
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateMasterCert(filepath.Join(dir, "pki-master")); err != nil {
		t.Fatal(err)
	}
	mk := filepath.Join(dir, "pki-master", "master.key")
	os.Chmod(mk, 0o640)
	if _, err := LoadOrCreateMasterCert(filepath.Join(dir, "pki-master")); !errors.Is(err, ErrKeyExposed) {
		t.Fatalf("master cert with an exposed key: %v", err)
	}
}
