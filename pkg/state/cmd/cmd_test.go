package cmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestShouldRun(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists")
	os.WriteFile(exists, nil, 0o644)
	cases := []struct {
		name    string
		spec    Spec
		run     bool
		comment string
	}{
		{"no checks", Spec{}, true, ""},
		{"onlyif true", Spec{OnlyIf: []string{"true"}}, true, ""},
		{"onlyif one false", Spec{OnlyIf: []string{"true", "test -e /nonexistent-brine"}}, false, "onlyif condition is false"},
		{"unless true", Spec{Unless: []string{"test -e " + exists}}, false, "unless condition is true"},
		{"unless one false runs", Spec{Unless: []string{"true", "false"}}, true, ""},
		{"creates exists", Spec{Creates: []string{exists}}, false, "All files in creates exist"},
		{"creates one missing", Spec{Creates: []string{exists, dir + "/missing"}}, true, ""},
		{"checks see cwd and env", Spec{Cwd: dir, Env: []string{"BRINE_X=1"}, OnlyIf: []string{`test -e exists && test "$BRINE_X" = 1`}}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run, comment, err := c.spec.ShouldRun(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if run != c.run || comment != c.comment {
				t.Fatalf("ShouldRun = %v %q, want %v %q", run, comment, c.run, c.comment)
			}
		})
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name   string
		spec   Spec
		want   Output
		errHas string
	}{
		{"stdout stderr retcode", Spec{Name: "echo out; echo err >&2; exit 3"}, Output{Retcode: 3, Stdout: "out", Stderr: "err"}, ""},
		{"cwd", Spec{Name: "pwd", Cwd: dir}, Output{Stdout: dir}, ""},
		{"env", Spec{Name: `printf '%s' "$A-$B"`, Env: []string{"A=1", "B=two words"}}, Output{Stdout: "1-two words"}, ""},
		{"runas", Spec{Name: "id -un; id -u", RunAs: "nobody"}, Output{Stdout: "nobody\n65534"}, ""},
		{"unknown runas", Spec{Name: "true", RunAs: "no-such-user-brine"}, Output{}, "no-such-user-brine"},
		{"killed by signal", Spec{Name: "kill -TERM $$"}, Output{Retcode: 143}, ""},
		{"shell metacharacters stay in the command", Spec{Name: "echo 'a;b' | tr ';' '-'"}, Output{Stdout: "a-b"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.spec.Run(context.Background())
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want %q", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.PID <= 0 {
				t.Errorf("pid = %d", out.PID)
			}
			out.PID = 0
			if out != c.want {
				t.Fatalf("got %+v, want %+v", out, c.want)
			}
		})
	}
}

// A timeout kills the whole process group, not just the shell.
func TestRunTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "child")
	start := time.Now()
	_, err := Spec{Name: "sleep 30 & echo $! > " + pidfile + "; wait", Timeout: 300 * time.Millisecond}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
	b, _ := os.ReadFile(pidfile)
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			break
		}
		if st, _ := os.ReadFile("/proc/" + pid + "/stat"); strings.Contains(string(st), ") Z ") {
			break // zombie: killed, waiting for its reaper
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %s survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A command that leaves a daemon holding stdout must not hang the run.
func TestRunBackgroundChildDoesNotHang(t *testing.T) {
	start := time.Now()
	out, err := Spec{Name: "sleep 20 & echo started"}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Stdout != "started" {
		t.Fatalf("stdout %q", out.Stdout)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("waited %s for a background child", d)
	}
}

func TestRunOutputCapped(t *testing.T) {
	out, err := Spec{Name: "head -c 3000000 /dev/zero | tr '\\0' x"}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Stdout) > maxOutput+100 || !strings.HasSuffix(out.Stdout, "[output truncated at 1 MiB]") {
		t.Fatalf("stdout len %d", len(out.Stdout))
	}
}
