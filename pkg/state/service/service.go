// Package service implements service.running and service.dead over
// systemd (systemctl) or, where systemd is not the init, SysV scripts in
// /etc/init.d driven with their LSB verbs.
package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Manager is the init system seam.
type Manager interface {
	Kind() string
	Running(ctx context.Context, name string) (bool, error)
	Start(ctx context.Context, name string) error
	Stop(ctx context.Context, name string) error
	Restart(ctx context.Context, name string) error
	Reload(ctx context.Context, name string) error
	Enabled(ctx context.Context, name string) (bool, error)
	Enable(ctx context.Context, name string) error
	Disable(ctx context.Context, name string) error
}

// Defaults for Detect.
const (
	DefaultSystemdDir = "/run/systemd/system"
	DefaultInitDir    = "/etc/init.d"
)

// Detect picks systemd when systemdDir exists (sd_booted's test), SysV
// scripts in initDir otherwise.
func Detect(systemdDir, initDir string) Manager {
	if systemdDir == "" {
		systemdDir = DefaultSystemdDir
	}
	if initDir == "" {
		initDir = DefaultInitDir
	}
	if fi, err := os.Stat(systemdDir); err == nil && fi.IsDir() {
		return Systemd{}
	}
	return SysV{InitDir: initDir}
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_@][A-Za-z0-9_@.:+-]*$`)

// ValidName refuses names that could be taken as options or escape the
// init directory.
func ValidName(name string) error {
	if !nameRe.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("service name %q is not valid", name)
	}
	return nil
}

type result struct {
	code   int
	stderr string
}

func run(ctx context.Context, bin string, args ...string) (result, error) {
	c := exec.CommandContext(ctx, bin, args...)
	var errb bytes.Buffer
	c.Stdout, c.Stderr = nil, &errb
	// A daemon forked by a script may inherit stderr; do not wait on it.
	c.WaitDelay = 2 * time.Second
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return result{code: ee.ExitCode(), stderr: strings.TrimSpace(errb.String())}, nil
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return result{}, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return result{stderr: strings.TrimSpace(errb.String())}, nil
}

func must(ctx context.Context, bin string, args ...string) error {
	r, err := run(ctx, bin, args...)
	if err != nil {
		return err
	}
	if r.code != 0 {
		return fmt.Errorf("%s %s: exit status %d: %s", bin, strings.Join(args, " "), r.code, r.stderr)
	}
	return nil
}

// Systemd drives units with systemctl.
type Systemd struct{ Systemctl string }

func (s Systemd) bin() string {
	if s.Systemctl == "" {
		return "systemctl"
	}
	return s.Systemctl
}

// Kind names the backend.
func (Systemd) Kind() string { return "systemd" }

// Running is systemctl is-active.
func (s Systemd) Running(ctx context.Context, name string) (bool, error) {
	r, err := run(ctx, s.bin(), "is-active", "--quiet", "--", name)
	return err == nil && r.code == 0, err
}

// Start starts the unit.
func (s Systemd) Start(ctx context.Context, name string) error {
	return must(ctx, s.bin(), "start", "--", name)
}

// Stop stops the unit.
func (s Systemd) Stop(ctx context.Context, name string) error {
	return must(ctx, s.bin(), "stop", "--", name)
}

// Restart restarts the unit.
func (s Systemd) Restart(ctx context.Context, name string) error {
	return must(ctx, s.bin(), "restart", "--", name)
}

// Reload reloads the unit.
func (s Systemd) Reload(ctx context.Context, name string) error {
	return must(ctx, s.bin(), "reload", "--", name)
}

// Enabled is systemctl is-enabled.
func (s Systemd) Enabled(ctx context.Context, name string) (bool, error) {
	r, err := run(ctx, s.bin(), "is-enabled", "--quiet", "--", name)
	return err == nil && r.code == 0, err
}

// Enable enables the unit.
func (s Systemd) Enable(ctx context.Context, name string) error {
	return must(ctx, s.bin(), "enable", "--", name)
}

// Disable disables the unit.
func (s Systemd) Disable(ctx context.Context, name string) error {
	return must(ctx, s.bin(), "disable", "--", name)
}

// SysV drives /etc/init.d scripts: status (LSB: 0 running, 1-3 not),
// start, stop, restart, reload. Enablement is the S links in
// <RCDir>/rc[2-5].d, changed with update-rc.d.
type SysV struct {
	InitDir string
	RCDir   string // default /etc
}

// Kind names the backend.
func (SysV) Kind() string { return "sysvinit" }

func (s SysV) script(name string) (string, error) {
	p := filepath.Join(s.InitDir, name)
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("service %s: no init script: %w", name, err)
	}
	if fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("service %s: init script %s is not executable", name, p)
	}
	return p, nil
}

// Running runs "<script> status".
func (s SysV) Running(ctx context.Context, name string) (bool, error) {
	p, err := s.script(name)
	if err != nil {
		return false, err
	}
	r, err := run(ctx, p, "status")
	if err != nil {
		return false, err
	}
	switch r.code {
	case 0:
		return true, nil
	case 1, 2, 3:
		return false, nil
	}
	return false, fmt.Errorf("service %s: %s status: unknown state (exit %d): %s", name, p, r.code, r.stderr)
}

func (s SysV) verb(ctx context.Context, name, verb string) error {
	p, err := s.script(name)
	if err != nil {
		return err
	}
	return must(ctx, p, verb)
}

// Start runs "<script> start".
func (s SysV) Start(ctx context.Context, name string) error { return s.verb(ctx, name, "start") }

// Stop runs "<script> stop".
func (s SysV) Stop(ctx context.Context, name string) error { return s.verb(ctx, name, "stop") }

// Restart runs "<script> restart".
func (s SysV) Restart(ctx context.Context, name string) error { return s.verb(ctx, name, "restart") }

// Reload runs "<script> reload".
func (s SysV) Reload(ctx context.Context, name string) error { return s.verb(ctx, name, "reload") }

func (s SysV) rcDir() string {
	if s.RCDir == "" {
		return "/etc"
	}
	return s.RCDir
}

// Enabled reports whether a start link exists in a multi-user runlevel.
func (s SysV) Enabled(ctx context.Context, name string) (bool, error) {
	m, err := filepath.Glob(filepath.Join(s.rcDir(), "rc[2-5].d", "S[0-9][0-9]"+name))
	return len(m) > 0, err
}

// Enable uses update-rc.d.
func (s SysV) Enable(ctx context.Context, name string) error {
	if err := must(ctx, "update-rc.d", name, "defaults"); err != nil {
		return err
	}
	return must(ctx, "update-rc.d", name, "enable")
}

// Disable uses update-rc.d.
func (s SysV) Disable(ctx context.Context, name string) error {
	return must(ctx, "update-rc.d", name, "disable")
}

// Spec is one service.running (Running true) or service.dead call.
type Spec struct {
	Name    string
	Running bool
	Enable  *bool // nil: leave boot-time enablement alone
	Reload  bool  // a fired watch reloads instead of restarting
	// Sig, as Salt's sig argument: the service runs when a process's
	// command line contains it, whatever the init script's status says.
	// For scripts whose status cannot be trusted (Debian's uwsgi answers
	// a bare "status" with exit 0 whether or not anything runs).
	Sig string
}

// ProcRoot is where running reads process command lines; tests may
// point it elsewhere.
var ProcRoot = "/proc"

// running asks the manager, or with Sig set looks for the process.
func (s Spec) running(ctx context.Context, m Manager) (bool, error) {
	if s.Sig == "" {
		return m.Running(ctx, s.Name)
	}
	return SigRunning(ProcRoot, s.Sig)
}

// SigRunning reports whether a process other than this one has a
// command line (arguments joined by spaces) containing sig, as Salt's
// status.pid does with ps.
func SigRunning(procRoot, sig string) (bool, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return false, fmt.Errorf("sig %q: %w", sig, err)
	}
	self := strconv.Itoa(os.Getpid())
	for _, e := range ents {
		name := e.Name()
		if name == self || strings.TrimLeft(name, "0123456789") != "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, name, "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a kernel thread
		}
		if strings.Contains(strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " "), sig) {
			return true, nil
		}
	}
	return false, nil
}

type plan struct {
	running, enabled bool
	changes          map[string]any
}

func (s Spec) plan(ctx context.Context, m Manager) (plan, error) {
	p := plan{changes: map[string]any{}}
	if err := ValidName(s.Name); err != nil {
		return p, err
	}
	var err error
	if p.running, err = s.running(ctx, m); err != nil {
		return p, err
	}
	if p.running != s.Running {
		p.changes[s.Name] = true
	}
	if s.Enable != nil {
		if p.enabled, err = m.Enabled(ctx, s.Name); err != nil {
			return p, err
		}
		if p.enabled != *s.Enable {
			p.changes["enabled"] = *s.Enable
		}
	}
	return p, nil
}

func (s Spec) upDown() (already, would, did string) {
	if s.Running {
		return "The service %s is already running", "Service %s is set to start", "Started service %s"
	}
	return "The service %s is already dead", "Service %s is set to be killed", "Service %s was killed"
}

// Check reports what Apply would change.
func (s Spec) Check(ctx context.Context, m Manager) (map[string]any, string, error) {
	p, err := s.plan(ctx, m)
	if err != nil {
		return nil, "", err
	}
	already, would, _ := s.upDown()
	if len(p.changes) == 0 {
		return nil, fmt.Sprintf(already, s.Name), nil
	}
	if _, ok := p.changes[s.Name]; !ok {
		would = "Service %s is set to be " + map[bool]string{true: "enabled", false: "disabled"}[*s.Enable]
	}
	return p.changes, fmt.Sprintf(would, s.Name), nil
}

// Apply starts or stops the service and sets enablement.
func (s Spec) Apply(ctx context.Context, m Manager) (map[string]any, string, error) {
	p, err := s.plan(ctx, m)
	if err != nil {
		return nil, "", err
	}
	already, _, did := s.upDown()
	if len(p.changes) == 0 {
		return nil, fmt.Sprintf(already, s.Name), nil
	}
	comment := []string{}
	if _, ok := p.changes[s.Name]; ok {
		if s.Running {
			err = m.Start(ctx, s.Name)
		} else {
			err = m.Stop(ctx, s.Name)
		}
		if err != nil {
			return nil, "", err
		}
		if err := s.settle(ctx, m, s.Running); err != nil {
			return nil, "", err
		}
		comment = append(comment, fmt.Sprintf(did, s.Name))
	} else {
		comment = append(comment, fmt.Sprintf(already, s.Name))
	}
	if want, ok := p.changes["enabled"].(bool); ok {
		if want {
			err = m.Enable(ctx, s.Name)
		} else {
			err = m.Disable(ctx, s.Name)
		}
		if err != nil {
			return p.changes, strings.Join(comment, "; "), err
		}
		comment = append(comment, fmt.Sprintf("Service %s has been %s", s.Name, map[bool]string{true: "enabled", false: "disabled"}[want]))
	}
	return p.changes, strings.Join(comment, "; "), nil
}

// settle waits briefly for the state a script reported reaching to be
// visible: some daemons write their pidfile after the start verb returns.
func (s Spec) settle(ctx context.Context, m Manager, want bool) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := s.running(ctx, m)
		if err != nil {
			return err
		}
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			if want {
				return fmt.Errorf("service %s failed to start", s.Name)
			}
			return fmt.Errorf("service %s is still running after stop", s.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Watch is Salt's mod_watch: a running service restarts (reloads with
// Reload), a stopped one starts; service.dead stops a running service.
// With test it only says what it would do.
func (s Spec) Watch(ctx context.Context, m Manager, test bool) (map[string]any, string, error) {
	if err := ValidName(s.Name); err != nil {
		return nil, "", err
	}
	running, err := s.running(ctx, m)
	if err != nil {
		return nil, "", err
	}
	var verb string
	var do func(context.Context, string) error
	switch {
	case !s.Running && !running:
		return nil, fmt.Sprintf("The service %s is already dead", s.Name), nil
	case !s.Running:
		verb, do = "stopped", m.Stop
	case !running:
		verb, do = "started", m.Start
	case s.Reload:
		verb, do = "reloaded", m.Reload
	default:
		verb, do = "restarted", m.Restart
	}
	if test {
		return map[string]any{s.Name: true}, fmt.Sprintf("Service %s is set to be %s", s.Name, verb), nil
	}
	if err := do(ctx, s.Name); err != nil {
		return nil, "", err
	}
	if err := s.settle(ctx, m, s.Running); err != nil {
		return nil, "", err
	}
	return map[string]any{s.Name: true}, fmt.Sprintf("Service %s %s", s.Name, verb), nil
}
