package hostile

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/brine-cm/brine/test/binaries"
)

// TestPermissionsAtRest starts a real master and minion and checks the
// modes of what they wrote: private keys 0600, data and key directories
// 0700, the control socket 0600 and owned by the master's user.
func TestPermissionsAtRest(t *testing.T) {
	t.Parallel()
	pm := startPortMaster(t, "")
	pm.startMinion("m1")
	pm.acceptMinions("m1")
	minionDir := filepath.Join(pm.root, "minions", "m1")
	want := []struct {
		path string
		mode fs.FileMode
	}{
		{pm.dataDir, 0o700},
		{filepath.Join(pm.dataDir, "pki"), 0o700},
		{filepath.Join(pm.dataDir, "pki", "master.key"), 0o600},
		{filepath.Join(pm.dataDir, "pki", "minions"), 0o700},
		{filepath.Join(pm.dataDir, "pki", "minions_pre"), 0o700},
		{filepath.Join(pm.dataDir, "pki", "minions_rejected"), 0o700},
		{filepath.Join(pm.dataDir, "pki", "minions_denied"), 0o700},
		{filepath.Join(pm.dataDir, "grains", "m1.json"), 0o600},
		{pm.socket, 0o600},
		{minionDir, 0o700},
		{filepath.Join(minionDir, "pki"), 0o700},
		{filepath.Join(minionDir, "pki", "minion.key"), 0o600},
	}
	// The grains cache is written just after the minion shows connected.
	binaries.Eventually(t, "grains cache of m1", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(pm.dataDir, "grains", "m1.json"))
		return err == nil
	})
	for _, w := range want {
		fi, err := os.Stat(w.path)
		if err != nil {
			t.Errorf("%s: %v", w.path, err)
			continue
		}
		if fi.Mode().Perm() != w.mode {
			t.Errorf("%s: mode %04o, want %04o", w.path, fi.Mode().Perm(), w.mode)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
			t.Errorf("%s: owner %d, want the daemon's user %d", w.path, st.Uid, os.Getuid())
		}
	}
	// Everything else the daemons wrote (job cache, mine, grains, spool,
	// keys) is closed to group and others too; only the certificate is
	// public.
	if _, rets := pm.publish("m1", "glob", "test.ping", nil, 20*time.Second); len(rets) != 1 {
		t.Fatalf("ping: %v", rets)
	}
	walked := 0
	for _, root := range []string{pm.dataDir, minionDir} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Errorf("%s: %v", p, err)
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return nil // removed meanwhile (a temp file)
			}
			walked++
			if p == filepath.Join(pm.dataDir, "pki", "master.crt") {
				return nil
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: mode %04o is open to group or others", p, fi.Mode().Perm())
			}
			return nil
		})
	}
	if walked < 15 {
		t.Errorf("walked only %d paths", walked)
	}

	// Pinned master fingerprints: 0600 too.
	pins, _ := filepath.Glob(filepath.Join(minionDir, "pki", "masters", "*.finger"))
	if len(pins) != 1 {
		t.Fatalf("pinned fingerprints: %v", pins)
	}
	if fi, _ := os.Stat(pins[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %04o", pins[0], fi.Mode().Perm())
	}
}

// TestDaemonsRefuseExposedPrivateKey: like ssh with an unprotected key,
// brine-master and brine-minion refuse to start when their private key is
// accessible by group or others, and say which file and what to do.
func TestDaemonsRefuseExposedPrivateKey(t *testing.T) {
	t.Parallel()
	bin := binaries.Build(t)
	root := t.TempDir()
	// Keys made by a first, clean start of each daemon.
	masterDir := filepath.Join(root, "master")
	minionDir := filepath.Join(root, "minion")
	masterKey := filepath.Join(masterDir, "pki", "master.key")
	minionKey := filepath.Join(minionDir, "pki", "minion.key")
	port := binaries.FreePort(t)
	masterArgs := func() []string {
		return []string{"--config", "/dev/null", "--data-dir", masterDir, "--interface", "127.0.0.1", "--port", fmt.Sprint(port)}
	}
	minionArgs := func() []string {
		return []string{"--config", "/dev/null", "--id", "m1", "--master", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", minionDir, "--hosts-file", filepath.Join(root, "hosts")}
	}
	for name, args := range map[string][]string{"brine-master": masterArgs(), "brine-minion": minionArgs()} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		exec.CommandContext(ctx, filepath.Join(bin, name), args...).Run() // ended by the timeout: it only has to create its key
		cancel()
	}
	for _, k := range []string{masterKey, minionKey} {
		if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s after first start: %v %v", k, fi, err)
		}
	}
	cases := []struct {
		daemon string
		key    string
		args   []string
		mode   fs.FileMode
		refuse bool
	}{
		{"brine-master", masterKey, masterArgs(), 0o644, true},
		{"brine-master", masterKey, masterArgs(), 0o640, true},
		{"brine-master", masterKey, masterArgs(), 0o604, true},
		{"brine-master", masterKey, masterArgs(), 0o620, true},
		{"brine-master", masterKey, masterArgs(), 0o400, false},
		{"brine-minion", minionKey, minionArgs(), 0o644, true},
		{"brine-minion", minionKey, minionArgs(), 0o640, true},
		{"brine-minion", minionKey, minionArgs(), 0o606, true},
		{"brine-minion", minionKey, minionArgs(), 0o400, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %04o", tc.daemon, tc.mode), func(t *testing.T) {
			if err := os.Chmod(tc.key, tc.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(tc.key, 0o600)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, filepath.Join(bin, tc.daemon), tc.args...).CombinedOutput()
			if !tc.refuse {
				if ctx.Err() == nil {
					t.Fatalf("%s with its key at %04o exited: %v\n%s", tc.daemon, tc.mode, err, out)
				}
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s started with its key at %04o", tc.daemon, tc.mode)
			}
			msg := string(out)
			if err == nil || !strings.Contains(msg, tc.key) || !strings.Contains(msg, "accessible by group or others") ||
				!strings.Contains(msg, "chmod 600 "+tc.key) || !strings.Contains(msg, fmt.Sprintf("%04o", tc.mode)) {
				t.Fatalf("%s with its key at %04o: err %v, output %q", tc.daemon, tc.mode, err, msg)
			}
			if fi, _ := os.Stat(tc.key); fi.Mode().Perm() != tc.mode {
				t.Errorf("the daemon changed the key's mode to %04o: it must refuse, not repair", fi.Mode().Perm())
			}
		})
	}
}
