// Package cmd runs commands for cmd.run and cmd.wait: a shell string run
// with /bin/sh -c, guarded by Salt's unless, onlyif and creates checks,
// optionally as another user, in a directory, with extra environment and a
// timeout.
package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultShell runs the command string, as Salt's cmd.run with a shell.
const DefaultShell = "/bin/sh"

// maxOutput caps what is kept of stdout and stderr each, so a chatty
// command cannot blow up the minion or the job return.
const maxOutput = 1 << 20

// Spec is one cmd.run call.
type Spec struct {
	Name    string // the command string
	Shell   string // default /bin/sh
	Unless  []string
	OnlyIf  []string
	Creates []string
	Cwd     string
	Env     []string // KEY=VALUE, added to the minion's environment
	RunAs   string
	Timeout time.Duration // 0: none
}

// Output is what a run produced, in the shape of Salt's changes.
type Output struct {
	PID     int
	Retcode int
	Stdout  string
	Stderr  string
}

// Map renders Output as Salt's cmd.run changes.
func (o Output) Map() map[string]any {
	return map[string]any{"pid": o.PID, "retcode": o.Retcode, "stdout": o.Stdout, "stderr": o.Stderr}
}

// ShouldRun evaluates onlyif, unless and creates, in Salt's order and with
// Salt's comments. They are checks: test mode runs them too.
func (s Spec) ShouldRun(ctx context.Context) (bool, string, error) {
	for _, c := range s.OnlyIf {
		out, err := s.exec(ctx, c)
		if err != nil {
			return false, "", fmt.Errorf("onlyif %q: %w", c, err)
		}
		if out.Retcode != 0 {
			return false, "onlyif condition is false", nil
		}
	}
	if len(s.Unless) > 0 {
		allTrue := true
		for _, c := range s.Unless {
			out, err := s.exec(ctx, c)
			if err != nil {
				return false, "", fmt.Errorf("unless %q: %w", c, err)
			}
			if out.Retcode != 0 {
				allTrue = false
				break
			}
		}
		if allTrue {
			return false, "unless condition is true", nil
		}
	}
	if len(s.Creates) > 0 {
		all := true
		for _, p := range s.Creates {
			if _, err := os.Stat(p); err != nil {
				all = false
				break
			}
		}
		if all {
			return false, "All files in creates exist", nil
		}
	}
	return true, "", nil
}

// Run runs the command. A non-zero exit is not an error here: the caller
// decides; err is for a command that could not be run or timed out.
func (s Spec) Run(ctx context.Context) (Output, error) {
	return s.exec(ctx, s.Name)
}

func (s Spec) exec(ctx context.Context, command string) (Output, error) {
	shell := s.Shell
	if shell == "" {
		shell = DefaultShell
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, shell, "-c", command)
	cmd.Dir = s.Cwd
	cmd.Env = append(os.Environ(), s.Env...)
	// Own process group: a timeout kills the shell's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A daemon started in the background keeps our pipes open; stop
	// waiting for them shortly after the shell itself exits.
	cmd.WaitDelay = 2 * time.Second
	if s.RunAs != "" {
		cred, env, err := Credential(s.RunAs)
		if err != nil {
			return Output{}, err
		}
		cmd.SysProcAttr.Credential = cred
		cmd.Env = append(cmd.Env, env...)
		if cmd.Dir == "" {
			cmd.Dir = env[0][len("HOME="):]
		}
	}
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return Output{}, fmt.Errorf("start %s: %w", shell, err)
	}
	err := cmd.Wait()
	out := Output{
		PID:    cmd.Process.Pid,
		Stdout: strings.TrimRight(stdout.String(), "\r\n"),
		Stderr: strings.TrimRight(stderr.String(), "\r\n"),
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && s.Timeout > 0 {
		out.Retcode = -1
		return out, fmt.Errorf("timed out after %s", s.Timeout)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		out.Retcode = exitErr.ExitCode()
		if out.Retcode < 0 {
			out.Retcode = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
		}
	case errors.Is(err, exec.ErrWaitDelay):
		// The command finished; only a background child held the pipes.
	default:
		return out, fmt.Errorf("run %q: %w", command, err)
	}
	return out, nil
}

// Credential resolves a user name to uid, gid and supplementary groups, and
// the HOME/USER/LOGNAME environment su would set (HOME first).
func Credential(name string) (*syscall.Credential, []string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, nil, fmt.Errorf("runas %q: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	home := u.HomeDir
	if home == "" {
		home = "/"
	}
	if fi, err := os.Stat(home); err != nil || !fi.IsDir() {
		home = "/"
	}
	return cred, []string{"HOME=" + home, "USER=" + u.Username, "LOGNAME=" + u.Username}, nil
}

// capped keeps the first maxOutput bytes. The buffer is a field, not
// embedded: an embedded bytes.Buffer would lend capped its ReadFrom and
// io.Copy would write around the cap.
type capped struct {
	buf     bytes.Buffer
	dropped bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := maxOutput - c.buf.Len(); room < len(p) {
		if room > 0 {
			c.buf.Write(p[:room])
		}
		c.dropped = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) String() string {
	if c.dropped {
		return c.buf.String() + "\n[output truncated at 1 MiB]"
	}
	return c.buf.String()
}
