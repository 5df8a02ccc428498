// Package ctl is brinectl, the operator CLI: a cobra command tree that
// talks to brine-master's Control service over its unix socket and renders
// returns with pkg/output the way Salt's CLI does.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/brine-cm/brine/pkg/output"
)

// Exit statuses, as Salt's CLI uses them.
const (
	exitOK      = 0
	exitFailure = 1 // a minion failed or did not return; the master reported an error
	exitUsage   = 2 // bad usage, invalid target, no master
)

// exitError carries an exit status out of a command. A nil err means the
// command already printed everything and only the status is left.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func failErr(err error) error { return &exitError{code: exitFailure, err: err} }

// silentExit reports a status without a message (the output said it all).
func silentExit(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// Env is everything brinectl takes from its process, so tests can run the
// whole CLI in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Terminal reports whether Stdout is a terminal: colour by default.
	Terminal bool
	// User is recorded with published jobs (the job cache's "user").
	User string
	// Now and Location render relative and absolute times (tests pin them).
	Now      func() time.Time
	Location *time.Location
}

func (e *Env) fill() {
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Location == nil {
		e.Location = time.Local
	}
}

// Execute runs brinectl as a process: os.Args, the real terminal, and
// SIGINT/SIGTERM cancelling the command. It returns the exit status.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := Env{
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Getenv:   os.Getenv,
		Terminal: IsTerminal(os.Stdout),
		User:     currentUser(),
	}
	return Main(ctx, os.Args[1:], env)
}

// currentUser names the operator the way Salt's job cache does: a sudo
// caller is recorded as sudo_<name>.
func currentUser() string {
	if s := os.Getenv("SUDO_USER"); s != "" {
		return "sudo_" + s
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Main runs brinectl with args (without the program name) and returns the
// exit status: 0 all fine, 1 a minion failed or did not return, 2 usage or
// connection errors. Errors are printed on env.Stderr.
func Main(ctx context.Context, args []string, env Env) int {
	env.fill()
	root := NewCommand(&env)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(env.Stderr, "Error: %v\n", ee.err)
		}
		if ee.code == exitUsage && isArgError(ee.err) && cmd != nil {
			fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ee.code
	}
	// Anything not typed by a command comes from cobra's own parsing and
	// validation (unknown flag or command, exclusive flags): usage errors.
	fmt.Fprintf(env.Stderr, "Error: %v\n", err)
	if cmd != nil {
		fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exitUsage
}

// argError marks wrong positional arguments, so Main can point at --help.
type argError struct{ error }

func (e argError) Unwrap() error { return e.error }

func isArgError(err error) bool {
	var ae argError
	return errors.As(err, &ae)
}

// args wraps a cobra argument validator so its error is a usage error.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return &exitError{code: exitUsage, err: argError{err}}
		}
		return nil
	}
}

// app is the state shared by all commands of one invocation.
type app struct {
	env     *Env
	socket  string
	out     string
	color   bool
	noColor bool
}

// formats accepted by --out; "" picks the command's default.
var formats = []string{"text", "nested", "json", "yaml", "highstate"}

// NewCommand builds the brinectl command tree writing to env.
func NewCommand(env *Env) *cobra.Command {
	env.fill()
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "brinectl",
		Short: "Operate a brine master: run jobs, apply states, manage keys",
		Long: `brinectl is brine's operator CLI, the counterpart of salt, salt-run and
salt-key. It talks to brine-master over the master's unix control socket;
the socket's file permissions decide who may use it.

Exit status: 0 when everything succeeded, 1 when a targeted minion failed
or did not return (or the master reported an error), 2 for usage errors,
invalid targets and when no master is running.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.out != "" && !slices.Contains(formats, a.out) {
				return usageErr("--out must be one of %s, not %q", strings.Join(formats, ", "), a.out)
			}
			return nil
		},
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: argError{err}}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", "", "master control socket (default $"+SocketEnv+", then "+DefaultSocket+")")
	pf.StringVar(&a.out, "out", "", "output format: text (nested), json, yaml or highstate")
	pf.BoolVar(&a.color, "color", false, "colour the output even when stdout is not a terminal")
	pf.BoolVar(&a.noColor, "no-color", false, "never colour the output (also: NO_COLOR set)")
	root.MarkFlagsMutuallyExclusive("color", "no-color")

	root.AddGroup(&cobra.Group{ID: "jobs", Title: "Jobs and states:"},
		&cobra.Group{ID: "master", Title: "Master data:"})
	for _, c := range []*cobra.Command{a.runCmd(), a.stateCmd(), a.mineCmd(), a.jobCmd()} {
		c.GroupID = "jobs"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.keyCmd(), a.minionsCmd(), a.pillarCmd(), a.eventsCmd(),
		a.eventCmd(), a.reactorCmd(), a.statusCmd()} {
		c.GroupID = "master"
		root.AddCommand(c)
	}
	root.AddCommand(a.docsCmd(root))
	root.InitDefaultCompletionCmd()
	return root
}

// socketPath resolves --socket, then $BRINE_SOCKET, then the default.
func (a *app) socketPath() string {
	if a.socket != "" {
		return a.socket
	}
	if s := a.env.Getenv(SocketEnv); s != "" {
		return s
	}
	return DefaultSocket
}

func (a *app) dial(ctx context.Context) (*Client, error) {
	c, err := Dial(ctx, a.socketPath())
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return c, nil
}

// format returns the chosen --out, or def when none was given.
func (a *app) format(def string) string {
	switch a.out {
	case "":
		return def
	case "nested":
		return "text"
	}
	return a.out
}

func (a *app) opts() output.Options {
	on := a.env.Terminal && a.env.Getenv("NO_COLOR") == ""
	if a.color {
		on = true
	}
	if a.noColor {
		on = false
	}
	return output.Options{Color: on}
}

// print renders a runner-style value (no per-minion outputter).
func (a *app) print(v any, def string) error {
	var err error
	switch a.format(def) {
	case "json":
		err = output.JSON(a.env.Stdout, v)
	case "yaml":
		err = output.YAML(a.env.Stdout, v)
	default:
		if s := output.Nested(v, 0, a.opts()); s != "" {
			_, err = fmt.Fprintln(a.env.Stdout, s)
		}
	}
	if err != nil {
		return failErr(fmt.Errorf("write output: %w", err))
	}
	return nil
}

// targetFlags adds Salt's target-type switches to cmd.
type targetFlags struct {
	grain, list, pcre, grainPCRE, ipcidr, compound bool
}

var targetFlagNames = []string{"grain", "list", "pcre", "grain-pcre", "ipcidr", "compound"}

func addTargetFlags(fs *pflag.FlagSet, t *targetFlags) {
	fs.BoolVarP(&t.grain, "grain", "G", false, "target is a grain match: 'os:Debian'")
	fs.BoolVarP(&t.list, "list", "L", false, "target is a comma-separated list of minion IDs")
	fs.BoolVarP(&t.pcre, "pcre", "E", false, "target is a regular expression on minion IDs")
	fs.BoolVarP(&t.grainPCRE, "grain-pcre", "P", false, "target is a grain regular expression match: 'os:Deb.*'")
	fs.BoolVarP(&t.ipcidr, "ipcidr", "S", false, "target is an IP address or CIDR subnet")
	fs.BoolVarP(&t.compound, "compound", "C", false, "target is a compound expression: 'G@os:Debian and web*'")
}

func markTargetFlags(cmd *cobra.Command) {
	cmd.MarkFlagsMutuallyExclusive(targetFlagNames...)
}

// tgtType is the wire name of the chosen target type.
func (t *targetFlags) tgtType() string {
	switch {
	case t.grain:
		return "grain"
	case t.list:
		return "list"
	case t.pcre:
		return "pcre"
	case t.grainPCRE:
		return "grain_pcre"
	case t.ipcidr:
		return "ipcidr"
	case t.compound:
		return "compound"
	}
	return "glob"
}
