package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Proc is a long-running process the fleet started. It leads a process
// group of its own, so stopping it also stops what it forked (nginx
// workers, a script's children), and a terminal's ^C reaches only the
// harness, which then tears everything down in order.
type Proc struct {
	Name string
	Log  string
	Cmd  *exec.Cmd

	done chan struct{}
	err  error
	logf *os.File
}

// Start runs argv in the root namespace with output appended to logPath.
func (f *Fleet) Start(name, logPath string, env []string, argv ...string) (*Proc, error) {
	f.mu.Lock()
	closed := f.done
	f.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("start %s: fleet %s is closed", name, f.Prefix)
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, Cmd: cmd, done: make(chan struct{}), logf: lf}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	f.logf("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	return p, nil
}

// Start runs argv inside the host's namespaces (network, and UTS with
// the host's name as hostname).
func (h *Host) Start(name, logPath string, env []string, argv ...string) (*Proc, error) {
	return h.fleet.Start(name, logPath, env, h.ArgvUTS(argv...)...)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is the exit error once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	if err := syscall.Kill(-p.Cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group and waits for the exit: a
// crash, with no chance to clean up.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// Stop asks the group to stop with SIGTERM and kills it after timeout.
func (p *Proc) Stop(timeout time.Duration) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
	// Whatever the leader left behind in its group goes too.
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
}

var (
	liveMu   sync.Mutex
	live     = map[*Fleet]bool{}
	sigMu    sync.Once
	onSignal []func()
)

// OnSignal adds fn to what HandleSignals runs after tearing the fleets
// down, before exiting: t.TempDir and other cleanups do not run then.
func OnSignal(fn func()) {
	liveMu.Lock()
	onSignal = append(onSignal, fn)
	liveMu.Unlock()
}

func register(f *Fleet) {
	liveMu.Lock()
	live[f] = true
	liveMu.Unlock()
}

func unregister(f *Fleet) {
	liveMu.Lock()
	delete(live, f)
	liveMu.Unlock()
}

// CloseAll tears down every fleet of this process.
func CloseAll() {
	liveMu.Lock()
	fs := make([]*Fleet, 0, len(live))
	for f := range live {
		fs = append(fs, f)
	}
	liveMu.Unlock()
	for _, f := range fs {
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "fleet %s teardown: %v\n", f.Prefix, err)
		}
	}
}

// HandleSignals makes SIGINT, SIGTERM and SIGHUP tear down every live
// fleet before the process exits (t.Cleanup does not run when a test
// binary is interrupted). SIGPIPE is ignored so that a reader of our
// output going away (a pipe into grep, closed by the same ^C) cannot kill
// the process in the middle of the teardown. Calling it more than once
// is harmless.
func HandleSignals() {
	sigMu.Do(func() {
		signal.Ignore(syscall.SIGPIPE)
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			sig := <-ch
			fmt.Fprintf(os.Stderr, "\n%s: tearing the fleet down\n", sig)
			CloseAll()
			liveMu.Lock()
			fns := append([]func(){}, onSignal...)
			liveMu.Unlock()
			for _, fn := range fns {
				fn()
			}
			os.Exit(130)
		}()
	})
}
