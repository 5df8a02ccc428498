package hostile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/brine-cm/brine/test/binaries"
)

// manyHostsSLS is a highstate of n host.present states, so that a run
// takes long enough for a kill to land in the middle of it.
func manyHostsSLS(n int) (string, map[string]bool) {
	var b strings.Builder
	valid := map[string]bool{}
	for i := 0; i < n; i++ {
		ip, name := fmt.Sprintf("10.77.%d.%d", i/250, i%250+1), fmt.Sprintf("node-%03d.internal", i)
		fmt.Fprintf(&b, "h%03d:\n  host.present:\n    - name: %s\n    - ip: %s\n", i, name, ip)
		valid[ip+"\t"+name] = true
	}
	return b.String(), valid
}

// A brine-minion SIGKILLed in the middle of a highstate that edits its
// hosts file leaves a file made only of whole lines: the original ones and
// complete entries, never a torn or truncated one. Repeated with the kill
// at different moments; after a restart the highstate completes.
func TestSIGKILLDuringHighstateLeavesWholeHostsFile(t *testing.T) {
	const n = 150
	sls, valid := manyHostsSLS(n)
	var base strings.Builder
	base.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&base, "0.0.0.0\tads-%d.blocklist.example\n", i)
	}
	for _, l := range strings.Split(strings.TrimSuffix(base.String(), "\n"), "\n") {
		valid[l] = true
	}
	f := startContentFleet(t, map[string]string{"states/manyhosts.sls": sls}, "", nil)
	hosts := f.path("m1/hosts")
	os.MkdirAll(filepath.Dir(hosts), 0o700)
	os.WriteFile(hosts, []byte(base.String()), 0o644)
	start := func(round int) *exec.Cmd {
		return binaries.Start(t, f.path(fmt.Sprintf("m1-%d.log", round)), filepath.Join(f.bin, "brine-minion"),
			"--config", "/dev/null", "--id", "m1", "--master", fmt.Sprintf("127.0.0.1:%d", f.port),
			"--data-dir", f.path("m1"), "--hosts-file", hosts)
	}
	kills := 0
	for round, delay := range []time.Duration{0, 40 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		proc := start(round)
		binaries.Eventually(t, "m1 connected", 30*time.Second, func() bool { return strings.Contains(strings.Join(f.ctl.Connected(), ","), "m1") })
		before, _ := os.Stat(hosts)
		apply := exec.Command(f.ctl.Bin, "--socket", f.ctl.Socket, "state", "apply", "m1", "manyhosts")
		apply.Start()
		binaries.Eventually(t, "the highstate starts writing", 30*time.Second, func() bool {
			st, err := os.Stat(hosts)
			return err == nil && !st.ModTime().Equal(before.ModTime())
		})
		time.Sleep(delay)
		proc.Process.Signal(syscall.SIGKILL)
		// binaries.Start reaps it; until then signal 0 still finds it.
		binaries.Eventually(t, "m1 process gone", 10*time.Second, func() bool { return syscall.Kill(proc.Process.Pid, 0) != nil })
		apply.Process.Kill() // brinectl would wait out the job timeout for the dead minion
		apply.Wait()
		kills++
		b, err := os.ReadFile(hosts)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("round %d: hosts file does not end with a whole line (%d bytes)", round, len(b))
		}
		got := 0
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if !valid[l] {
				t.Fatalf("round %d (kill after %s): torn or foreign line %q", round, delay, l)
			}
			if strings.HasPrefix(l, "10.77.") {
				got++
			}
		}
		t.Logf("round %d: killed %s after the first write, %d/%d entries in, file whole", round, delay, got, n)
		binaries.Eventually(t, "m1 seen gone", 30*time.Second, func() bool { return !strings.Contains(strings.Join(f.ctl.Connected(), ","), "m1") })
	}
	start(99)
	binaries.Eventually(t, "m1 back", 30*time.Second, func() bool { return strings.Contains(strings.Join(f.ctl.Connected(), ","), "m1") })
	if out, code := f.ctl.Run("state", "apply", "m1", "manyhosts"); code != 0 {
		t.Fatalf("highstate after the kills: %d\n%s", code, out)
	}
	b, _ := os.ReadFile(hosts)
	if c := strings.Count(string(b), "\n10.77."); c != n {
		t.Fatalf("after a full run %d/%d entries", c, n)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(hosts), ".hosts.brine-tmp-*")); len(left) != 0 {
		t.Fatalf("temp files of killed writers left: %v", left)
	}
	t.Logf("SIGKILL mid-highstate: %d kills, hosts file whole every time", kills)
}

// A minion whose hosts file is a bind mount (Docker's /etc/hosts): the
// real brine-minion runs in a private mount namespace where a file is
// bind-mounted over its hosts file. rename(2) over it fails with EBUSY, so
// brine rewrites it in place, the mounted file receives the new content,
// and the state's comment says how it was written. A hosts file that is a
// symlink is refused, and its target is untouched.
func TestBindMountedAndSymlinkedHostsFile(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("unshare(1) is needed: ", err)
	}
	files := map[string]string{
		"states/hosts.sls": "db:\n  host.present:\n    - name: db.internal\n    - ip: 10.0.0.5\n",
		"docker-hosts":     "127.0.0.1\tlocalhost\n172.17.0.2\tcontainer-id\n",
		"bm/hosts":         "# hidden under the mount\n",
		"shadow":           "root:$6$secret::::::\n",
	}
	f := startContentFleet(t, files, "", nil)
	os.MkdirAll(f.path("bm/data"), 0o700)
	minion := fmt.Sprintf("mount --bind %s %s && exec %s --config /dev/null --id bm --master 127.0.0.1:%d --data-dir %s --hosts-file %s",
		f.path("docker-hosts"), f.path("bm/hosts"), filepath.Join(f.bin, "brine-minion"), f.port, f.path("bm/data"), f.path("bm/hosts"))
	binaries.Start(t, f.path("bm.log"), unshare, "-m", "--propagation", "private", "sh", "-c", minion)

	os.MkdirAll(f.path("sl"), 0o700)
	if err := os.Symlink(f.path("shadow"), f.path("sl/hosts")); err != nil {
		t.Fatal(err)
	}
	binaries.Start(t, f.path("sl.log"), filepath.Join(f.bin, "brine-minion"), "--config", "/dev/null", "--id", "sl",
		"--master", fmt.Sprintf("127.0.0.1:%d", f.port), "--data-dir", f.path("sl/data"), "--hosts-file", f.path("sl/hosts"))
	binaries.Eventually(t, "bm and sl connected", 30*time.Second, func() bool { return strings.Join(f.ctl.Connected(), ",") == "bm,sl" })

	out, code := f.ctl.Run("state", "apply", "bm", "hosts")
	if code != 0 || !strings.Contains(out, "rewritten in place: bind mount") {
		t.Fatalf("bind-mounted hosts: exit %d, comment does not say how it was written\n%s", code, out)
	}
	if b, _ := os.ReadFile(f.path("docker-hosts")); string(b) != "127.0.0.1\tlocalhost\n172.17.0.2\tcontainer-id\n10.0.0.5\tdb.internal\n" {
		t.Fatalf("the bind-mounted file: %q", b)
	}
	if b, _ := os.ReadFile(f.path("bm/hosts")); string(b) != "# hidden under the mount\n" {
		t.Fatalf("the file under the mount changed: %q", b)
	}

	out, code = f.ctl.Run("state", "apply", "sl", "hosts")
	if code == 0 || !strings.Contains(out, "symbolic link") {
		t.Fatalf("symlinked hosts: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(f.path("shadow")); string(b) != "root:$6$secret::::::\n" {
		t.Fatalf("written through the symlink: %q", b)
	}
}
