package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A hosts file that is a symlink is neither read nor written through: the
// link's target (here a stand-in for /etc/shadow) stays untouched.
func TestHostsFileSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "shadow")
	os.WriteFile(victim, []byte("root:$6$secret:19000::::::\n"), 0o600)
	hosts := filepath.Join(dir, "hosts")
	if err := os.Symlink(victim, hosts); err != nil {
		t.Fatal(err)
	}
	e := Edit{Name: "db", IPs: []string{"10.0.0.5"}}
	if _, err := Check(hosts, e); !errors.Is(err, ErrSymlink) {
		t.Fatalf("Check through a symlink: %v", err)
	}
	if _, err := Update(context.Background(), hosts, e); !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), hosts) {
		t.Fatalf("Update through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:$6$secret:19000::::::\n" {
		t.Fatalf("link target written: %q", b)
	}
	if fi, _ := os.Lstat(hosts); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link itself was replaced")
	}
}

// The hosts file swapped for a symlink (or another file) after it was read
// and before the new content is renamed over it: nothing is written, the
// link's target is untouched, and the error says why.
func TestHostsFileSwappedBetweenReadAndWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		swap func(hosts, victim string) error
		want string
	}{
		{"symlink", func(hosts, victim string) error {
			os.Remove(hosts)
			return os.Symlink(victim, hosts)
		}, "replaced by a symbolic link"},
		{"other file", func(hosts, victim string) error {
			os.Remove(hosts)
			return os.WriteFile(hosts, []byte("10.6.6.6 evil\n"), 0o644)
		}, "replaced by another file"},
		{"removed", func(hosts, victim string) error { return os.Remove(hosts) }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "shadow")
			os.WriteFile(victim, []byte("secret\n"), 0o600)
			hosts := filepath.Join(dir, "hosts")
			os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644)
			testHookBeforeRename = func(p string) {
				if err := tc.swap(p, victim); err != nil {
					t.Error(err)
				}
			}
			defer func() { testHookBeforeRename = nil }()
			_, err := Update(context.Background(), hosts, Edit{Name: "db", IPs: []string{"10.0.0.5"}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if b, _ := os.ReadFile(victim); string(b) != "secret\n" {
				t.Fatalf("victim written: %q", b)
			}
			if b, _ := os.ReadFile(hosts); bytes.Contains(b, []byte("10.0.0.5")) {
				t.Fatalf("swapped-in file written: %q", b)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".hosts"+tempInfix+"*")); len(left) != 0 {
				t.Fatalf("temp files left: %v", left)
			}
		})
	}
}

const writerEnv = "BRINE_HOSTS_KILL_WRITER"

// TestHelperHostsWriter is the process the SIGKILL test kills: it toggles
// one entry in the hosts file as fast as it can, forever.
func TestHelperHostsWriter(t *testing.T) {
	path := os.Getenv(writerEnv)
	if path == "" {
		return // only meaningful as the child of TestSIGKILLDuringHostsWrite
	}
	for i := 0; ; i++ {
		e := Edit{Name: "toggled", IPs: []string{"10.9.9.9"}, Absent: i%2 == 1}
		if _, err := Update(context.Background(), path, e); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if i == 0 {
			fmt.Println("WRITING") // the parent starts its kill timer now
		}
	}
}

// A writer SIGKILLed at random moments never leaves a half-written hosts
// file: after every kill the file is exactly the old or the new version,
// and the temp files of killed writers are cleaned up by the next one.
func TestSIGKILLDuringHostsWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	var big strings.Builder
	big.WriteString("127.0.0.1 localhost\n")
	for i := 0; i < 10000; i++ { // ~350 KiB, so a write takes long enough to be hit
		fmt.Fprintf(&big, "10.%d.%d.%d host-%d.blocklist.example\n", i>>16, (i>>8)&255, i&255, i)
	}
	without := big.String()
	os.WriteFile(path, []byte(without), 0o644)
	with := Parse([]byte(without))
	if _, err := with.Apply(Edit{Name: "toggled", IPs: []string{"10.9.9.9"}}); err != nil {
		t.Fatal(err)
	}
	valid := map[string]bool{without: true, string(with.Bytes()): true}

	kills, sawBoth := 0, map[bool]bool{}
	for kills < 25 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHostsWriter$")
		cmd.Env = append(os.Environ(), writerEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if !strings.Contains(line, "WRITING") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("writer did not start: %q %s", line, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("writer ended before the kill: %v %s", err, stderr.String())
		}
		kills++
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !valid[string(b)] {
			t.Fatalf("after kill %d the hosts file is neither version (%d bytes)", kills, len(b))
		}
		sawBoth[string(b) == without] = true
	}
	if !sawBoth[true] || !sawBoth[false] {
		t.Fatalf("kills only ever caught one version (%v): the writer was not hit mid-run", sawBoth)
	}
	if _, err := Update(context.Background(), path, Edit{Name: "after", IPs: []string{"10.1.1.1"}}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".hosts"+tempInfix+"*")); len(left) != 0 {
		t.Fatalf("temp files of killed writers left behind: %v", left)
	}
}

const bindEnv = "BRINE_HOSTS_BIND_HELPER"

// TestHelperBindMounted runs inside a private mount namespace (see
// TestBindMountedHostsRewrittenInPlace): it bind-mounts a file over the
// hosts file, as Docker does, and edits it.
func TestHelperBindMounted(t *testing.T) {
	dir := os.Getenv(bindEnv)
	if dir == "" {
		return
	}
	src, hosts := filepath.Join(dir, "docker-hosts"), filepath.Join(dir, "hosts")
	if out, err := exec.Command("mount", "--bind", src, hosts).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind: %v %s", err, out)
	}
	if err := os.Rename(filepath.Join(dir, "probe"), hosts); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("rename over a bind mount: %v, want EBUSY", err)
	}
	ch, err := Update(context.Background(), hosts, Edit{Name: "db", IPs: []string{"10.0.0.5"}})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Method != MethodInPlace {
		t.Fatalf("method %q", ch.Method)
	}
	// Shrinking the file must cut it, not leave the old tail behind.
	if _, err := Update(context.Background(), hosts, Edit{Absent: true, Name: "oldname"}); err != nil {
		t.Fatal(err)
	}
	// Read-only (a :ro volume): a clear error, the content stays whole.
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", hosts).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	before, _ := os.ReadFile(hosts)
	_, err = Update(context.Background(), hosts, Edit{Name: "cache", IPs: []string{"10.0.0.6"}})
	if err == nil || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), hosts) {
		t.Fatalf("read-only bind mount: %v", err)
	}
	if after, _ := os.ReadFile(hosts); !bytes.Equal(before, after) {
		t.Fatalf("read-only file changed: %q", after)
	}
	fmt.Println("BIND-OK")
}

// A bind-mounted hosts file cannot be renamed over (EBUSY): it is
// rewritten in place, the mounted file (the container runtime's copy)
// gets the new content, and the result says how it was written.
func TestBindMountedHostsRewrittenInPlace(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("unshare(1) is needed for a private mount namespace: ", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-hosts"), []byte("127.0.0.1 localhost\n172.17.0.2 oldname with-a-long-alias-list alias2 alias3\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("# the image's own file, hidden by the mount\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "probe"), nil, 0o644)
	cmd := exec.Command(unshare, "-m", "--propagation", "private", os.Args[0], "-test.run=^TestHelperBindMounted$", "-test.v")
	cmd.Env = append(os.Environ(), bindEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "BIND-OK") {
		t.Fatalf("helper in a mount namespace: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "docker-hosts"))
	if want := "127.0.0.1 localhost\n172.17.0.2 with-a-long-alias-list alias2 alias3\n10.0.0.5\tdb\n"; string(got) != want {
		t.Fatalf("bind-mounted file = %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hosts")); string(b) != "# the image's own file, hidden by the mount\n" {
		t.Fatalf("the file under the mount changed: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".hosts"+tempInfix+"*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}
