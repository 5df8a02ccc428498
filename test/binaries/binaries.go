// Package binaries runs the real brine programs for end-to-end tests: it
// builds brine-master, brine-minion and brinectl once per test process,
// starts daemons as processes that are stopped when the test ends, and
// drives brinectl over a master's control socket.
package binaries

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Build compiles the three programs once per test process and returns the
// directory holding them. Call Cleanup from TestMain to remove it.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if binDir, buildErr = os.MkdirTemp("", "brine-bin"); buildErr != nil {
			return
		}
		for name, pkg := range map[string]string{"brine-master": "./cmd/master", "brine-minion": "./cmd/minion", "brinectl": "./cmd/ctl"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Cleanup removes the built programs.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs a daemon logging to logPath. At the end of the test it is
// interrupted (killed after 15 s), and its log's tail is shown if the test
// failed.
func Start(t testing.TB, logPath, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("--- %s (tail)\n%s", logPath, b)
		}
	})
	return cmd
}

// Ctl runs brinectl against one master's control socket.
type Ctl struct {
	T      testing.TB
	Bin    string // path of brinectl
	Socket string
}

// Run returns brinectl's combined output and exit status.
func (c Ctl) Run(args ...string) (string, int) {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, append([]string{"--socket", c.Socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.T.Fatalf("brinectl %v: %v", args, err)
	}
	return out.String() + errb.String(), code
}

// JSON runs brinectl with --out json, failing the test on a non-zero exit.
func (c Ctl) JSON(args ...string) any {
	c.T.Helper()
	out, code := c.Run(append(args, "--out", "json")...)
	if code != 0 {
		c.T.Fatalf("brinectl %v: exit %d\n%s", args, code, out)
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.T.Fatalf("brinectl %v: not JSON: %v\n%s", args, err, out)
	}
	return v
}

// Connected lists the minions the master shows connected, sorted; nil
// when brinectl fails (the master may be down).
func (c Ctl) Connected() []string {
	c.T.Helper()
	out, code := c.Run("minions", "--out", "json")
	if code != 0 {
		return nil
	}
	var v []any
	if json.Unmarshal([]byte(out), &v) != nil {
		return nil
	}
	var ids []string
	for _, e := range v {
		if mn, ok := e.(map[string]any); ok && mn["connected"] == true {
			ids = append(ids, fmt.Sprint(mn["id"]))
		}
	}
	sort.Strings(ids)
	return ids
}

// Eventually polls cond every 100 ms until it holds or d passes.
func Eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s: %s", d, what)
}
