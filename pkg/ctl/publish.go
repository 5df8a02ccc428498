package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brine-cm/brine/pkg/output"
	"github.com/brine-cm/brine/proto/brinev1"
)

// Salt's wording for minions without a return, kept verbatim because
// operators grep for it.
const (
	noResponse   = "Minion did not return. [No response]"
	notConnected = "Minion did not return. [Not connected]"
)

// stateFuns are the functions whose returns Salt renders with the
// highstate outputter by default.
var stateFuns = []string{
	"state.apply", "state.highstate", "state.sls", "state.sls_id", "state.single",
	"state.top", "state.template", "state.template_str", "state.low",
}

// streamGrace is how long after the job timeout brinectl keeps waiting
// for the master's JobDone before giving up on the stream.
const streamGrace = 30 * time.Second

// publishFlags are the options of every command that publishes a job.
type publishFlags struct {
	target      targetFlags
	timeout     int
	stateOutput string
	verbose     bool
}

func addPublishFlags(cmd *cobra.Command, p *publishFlags) {
	fs := cmd.Flags()
	addTargetFlags(fs, &p.target)
	markTargetFlags(cmd)
	fs.IntVarP(&p.timeout, "timeout", "t", 10, "seconds to wait for minions to return")
	fs.StringVar(&p.stateOutput, "state-output", "full", "highstate output: full, terse, mixed or changes")
	fs.BoolVarP(&p.verbose, "verbose", "v", false, "print the job ID and a summary on stderr")
}

func (p *publishFlags) validate() error {
	if p.timeout <= 0 {
		return usageErr("--timeout must be a positive number of seconds, not %d", p.timeout)
	}
	if !slices.Contains(output.StateOutputs, p.stateOutput) {
		return usageErr("--state-output must be one of %s, not %q", strings.Join(output.StateOutputs, ", "), p.stateOutput)
	}
	return nil
}

// job is one publish request as the CLI builds it.
type job struct {
	target string
	fun    string
	args   []any
	kwargs map[string]any
}

// publish sends the job, renders returns as they arrive and returns the
// exit status as an error (nil when every targeted minion succeeded).
func (a *app) publish(ctx context.Context, p *publishFlags, j job) error {
	if err := p.validate(); err != nil {
		return err
	}
	wargs, wkwargs, err := toWire(j.args, j.kwargs)
	if err != nil {
		return usageErr("%w", err)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	timeout := time.Duration(p.timeout) * time.Second
	sctx, cancel := context.WithTimeout(ctx, timeout+streamGrace)
	defer cancel()
	stream, err := c.Publish(sctx, &brinev1.PublishRequest{
		Target:    j.target,
		TgtType:   p.target.tgtType(),
		Fun:       j.fun,
		Args:      wargs,
		Kwargs:    wkwargs,
		TimeoutMs: timeout.Milliseconds(),
		User:      a.env.User,
	})
	if err != nil {
		return rpcError(c.Socket, "publish "+j.fun, err)
	}

	def := "text"
	if slices.Contains(stateFuns, j.fun) {
		def = "highstate"
	}
	r := newRenderer(a, a.format(def), p.stateOutput)
	var (
		jid      string
		targeted []string
		offline  = map[string]bool{}
		missing  = map[string]bool{}
		done     bool
	)
	for !done {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				if jid == "" {
					fmt.Fprintln(a.env.Stderr, "Exiting on interrupt before the master started the job.")
				} else {
					fmt.Fprintf(a.env.Stderr, "Exiting on interrupt. The job continues on the minions; its returns are kept by the master:\n    brinectl job show %s\n", jid)
				}
				return silentExit(exitFailure)
			}
			if status.Code(err) == codes.DeadlineExceeded && jid != "" {
				fmt.Fprintf(a.env.Stderr, "Error: the master sent no end of job %s within %s; listing minions without a return as not responding\n", jid, timeout+streamGrace)
				break
			}
			return rpcError(c.Socket, "publish "+j.fun, err)
		}
		switch x := ev.Ev.(type) {
		case *brinev1.PublishEvent_Started:
			jid = x.Started.Jid
			targeted = x.Started.Targeted
			for _, id := range x.Started.Offline {
				offline[id] = true
			}
			if len(targeted) == 0 {
				return usageErr("No minions matched the target. No command was sent, no jid was assigned.")
			}
			if p.verbose {
				fmt.Fprintf(a.env.Stderr, "Executing job with jid %s\n-------------------------------------------\n\n", jid)
			}
		case *brinev1.PublishEvent_Ret:
			if err := r.ret(x.Ret); err != nil {
				return err
			}
		case *brinev1.PublishEvent_Done:
			for _, id := range x.Done.Missing {
				missing[id] = true
			}
			for _, id := range x.Done.Offline {
				offline[id] = true
			}
			done = true
		}
	}
	// Anything targeted that neither returned nor was reported is missing:
	// that covers a stream that ended early.
	for _, id := range targeted {
		if !r.returned[id] && !offline[id] {
			missing[id] = true
		}
	}
	for id := range offline {
		delete(missing, id)
	}
	for _, id := range sortedKeys(missing) {
		if r.returned[id] {
			continue
		}
		if err := r.absent(id, noResponse); err != nil {
			return err
		}
	}
	for _, id := range sortedKeys(offline) {
		if r.returned[id] {
			continue
		}
		if err := r.absent(id, notConnected); err != nil {
			return err
		}
	}
	if err := r.flush(); err != nil {
		return err
	}
	if p.verbose {
		fmt.Fprintf(a.env.Stderr, "\n-------------------------------------------\nSummary\n-------------------------------------------\n"+
			"# of minions targeted: %d\n# of minions returned: %d\n# of minions that did not return: %d\n# of minions with errors: %d\n-------------------------------------------\n",
			len(targeted), len(r.returned), r.absentCount, r.failures)
	}
	if r.failures > 0 || r.absentCount > 0 {
		return silentExit(exitFailure)
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// renderer prints job returns: text and highstate stream as returns
// arrive (like salt), json and yaml collect one mapping minion -> return.
type renderer struct {
	a           *app
	format      string
	opts        output.Options
	returned    map[string]bool
	collected   map[string]any
	failures    int
	absentCount int
	err         error // first write error; later output is skipped
}

func newRenderer(a *app, format, stateOutput string) *renderer {
	o := a.opts()
	o.StateOutput = stateOutput
	return &renderer{a: a, format: format, opts: o, returned: map[string]bool{}, collected: map[string]any{}}
}

func (r *renderer) ret(ret *brinev1.Return) error {
	id := ret.GetId()
	if r.returned[id] {
		return nil // a duplicate delivery must not be printed or counted twice
	}
	r.returned[id] = true
	var v any
	if ret.GetRet() != nil {
		v = ret.GetRet().AsInterface()
	}
	failed := !ret.GetSuccess() || ret.GetError() != ""
	if ret.GetError() != "" {
		v = ret.GetError()
	}
	if r.emit(id, v, failed) {
		r.failures++
	}
	return r.err
}

func (r *renderer) absent(id, why string) error {
	r.absentCount++
	r.emit(id, why, true)
	return r.err
}

// emit renders one minion's value and reports whether it counts as failed
// (highstate output can find failed states in an otherwise successful
// return). Write errors are kept in r.err.
func (r *renderer) emit(id string, v any, failed bool) bool {
	w := r.a.env.Stdout
	switch r.format {
	case "json", "yaml":
		r.collected[id] = v
	case "highstate":
		s, st := output.Highstate(id, v, r.opts)
		if _, isMap := v.(map[string]any); isMap || len(st.CompileErrors) > 0 {
			failed = failed || !st.OK()
		}
		r.write(w, s)
	default:
		o := r.opts
		if failed {
			o.Retcode = 1
		}
		r.write(w, output.Nested(map[string]any{id: v}, 0, o))
	}
	return failed
}

func (r *renderer) write(w io.Writer, s string) {
	if r.err != nil {
		return
	}
	if _, err := fmt.Fprintln(w, s); err != nil {
		r.err = failErr(fmt.Errorf("write output: %w", err))
	}
}

func (r *renderer) flush() error {
	if r.err != nil {
		return r.err
	}
	switch r.format {
	case "json":
		if err := output.JSON(r.a.env.Stdout, r.collected); err != nil {
			return failErr(err)
		}
	case "yaml":
		if err := output.YAML(r.a.env.Stdout, r.collected); err != nil {
			return failErr(err)
		}
	}
	return nil
}

// ---- commands ----

func (a *app) runCmd() *cobra.Command {
	var p publishFlags
	cmd := &cobra.Command{
		Use:   "run TARGET FUNCTION [ARG...] [KEY=VALUE...]",
		Short: "Run an execution function on targeted minions (like salt)",
		Long: `Run FUNCTION on the minions matched by TARGET and print each minion's
return as it arrives, like the salt command.

Arguments are parsed as Salt does: KEY=VALUE is a keyword argument,
anything else is positional, and each value is read as YAML, so numbers,
true/false, null, [lists] and {mappings} arrive typed while plain words stay
strings. Put -- before arguments that start with a dash.

Functions of the state module (state.apply, state.sls, ...) are printed with
the highstate outputter unless --out says otherwise.`,
		Example: `  brinectl run '*' test.ping
  brinectl run -G 'os:Debian' cmd.run 'uptime'
  brinectl run -L web1,web2 pkg.install nginx refresh=true
  brinectl run web1 state.apply nginx pillar='{"port": 8080}' test=true
  brinectl run web1 test.arg -- -1 --literal`,
		Args: args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, in []string) error {
			pos, kw, err := ParseArgs(in[2:])
			if err != nil {
				return usageErr("%w", err)
			}
			return a.publish(cmd.Context(), &p, job{target: in[0], fun: in[1], args: pos, kwargs: kw})
		},
	}
	addPublishFlags(cmd, &p)
	return cmd
}

func (a *app) stateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Apply, test and inspect states",
	}
	stateJob := func(use, short, long, fun string, nargs int) *cobra.Command {
		var p publishFlags
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Long:  long,
			Args:  args(cobra.MinimumNArgs(nargs)),
			RunE: func(cmd *cobra.Command, in []string) error {
				pos, kw, err := ParseArgs(in[1:])
				if err != nil {
					return usageErr("%w", err)
				}
				if err := checkStateKwargs(kw); err != nil {
					return err
				}
				j := job{target: in[0], fun: fun, args: []any{}, kwargs: kw}
				if len(pos) > 0 {
					if fun == "state.highstate" {
						return usageErr("state highstate takes no SLS names (got %v); use state apply TARGET SLS", pos)
					}
					mods, err := slsList(pos)
					if err != nil {
						return err
					}
					j.args = []any{mods}
				} else if fun == "state.sls" {
					return usageErr("state sls needs at least one SLS name")
				}
				return a.publish(cmd.Context(), &p, j)
			},
		}
		addPublishFlags(c, &p)
		return c
	}
	cmd.AddCommand(
		stateJob("apply TARGET [SLS[,SLS...]] [test=True] [pillar=JSON] [saltenv=ENV]",
			"Apply the highstate, or the given SLS files, to targeted minions",
			`Apply states like salt TARGET state.apply: without SLS names the minions
get their highstate (from the top file); with them only those SLS files.
test=True reports what would change without changing anything. pillar=
takes a mapping (JSON or YAML flow style) merged over the minion's pillar.

The highstate outputter prints each state; --state-output=terse prints one
line per state, changes prints only changed and failed states in full.
The exit status is 1 when any state failed or a minion did not return.`,
			"state.apply", 1),
		stateJob("highstate TARGET [test=True] [pillar=JSON]",
			"Apply the highstate (everything the top file assigns)",
			"Apply the top file's states to the targeted minions, like salt TARGET state.highstate.",
			"state.highstate", 1),
		stateJob("sls TARGET SLS[,SLS...] [test=True] [pillar=JSON]",
			"Apply the given SLS files",
			"Apply the named SLS files to the targeted minions, like salt TARGET state.sls.",
			"state.sls", 2),
		a.runnerTargetCmd("show_sls TARGET SLS", "Show the compiled low chunks of an SLS for the targeted minions",
			"state.show_sls", 2, true),
		a.runnerTargetCmd("show_top TARGET", "Show which SLS files the top file assigns to the targeted minions",
			"state.show_top", 1, false),
	)
	return cmd
}

// slsList joins SLS names given as one or several arguments: "a,b" and
// "a b" both mean [a, b], as state.apply's mods argument.
func slsList(pos []any) (string, error) {
	var names []string
	for _, v := range pos {
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return "", usageErr("empty SLS name")
	}
	return strings.Join(names, ","), nil
}

// checkStateKwargs refuses the mistakes Salt refuses before publishing.
func checkStateKwargs(kw map[string]any) error {
	if p, ok := kw["pillar"]; ok {
		if _, isMap := p.(map[string]any); !isMap {
			return usageErr(`pillar must be a mapping, like pillar='{"key": "value"}' (got %v)`, p)
		}
	}
	if t, ok := kw["test"]; ok {
		if _, isBool := t.(bool); !isBool {
			return usageErr("test must be True or False (got %v)", t)
		}
	}
	return nil
}

func (a *app) mineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mine",
		Short: "Read, refresh and flush the mine",
	}
	var p publishFlags
	update := &cobra.Command{
		Use:   "update TARGET",
		Short: "Make the targeted minions send fresh mine data now",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, in []string) error {
			return a.publish(cmd.Context(), &p, job{target: in[0], fun: "mine.update", args: []any{}, kwargs: map[string]any{}})
		},
	}
	addPublishFlags(update, &p)

	var gt targetFlags
	get := &cobra.Command{
		Use:   "get TARGET FUNCTION",
		Short: "Show the mine data of FUNCTION for the minions matched by TARGET",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, in []string) error {
			return a.runner(cmd.Context(), "mine.get", []any{in[0], in[1]}, map[string]any{"tgt_type": gt.tgtType()}, a.printNested)
		},
	}
	addTargetFlags(get.Flags(), &gt)
	markTargetFlags(get)

	var ft targetFlags
	flush := &cobra.Command{
		Use:   "flush TARGET",
		Short: "Delete the mine data of the targeted minions on the master",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, in []string) error {
			return a.runner(cmd.Context(), "mine.flush", []any{in[0]}, map[string]any{"tgt_type": ft.tgtType()}, a.printNested)
		},
	}
	addTargetFlags(flush.Flags(), &ft)
	markTargetFlags(flush)
	cmd.AddCommand(get, update, flush)
	return cmd
}
