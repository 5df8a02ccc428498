package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/brine-cm/brine/pkg/output"
	"github.com/brine-cm/brine/proto/brinev1"
)

// runner calls a master-side function and hands its return to render.
func (a *app) runner(ctx context.Context, fun string, args []any, kwargs map[string]any, render func(any) error) error {
	wargs, wkwargs, err := toWire(args, kwargs)
	if err != nil {
		return usageErr("%w", err)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	reply, err := c.Control.Runner(ctx, &brinev1.RunnerRequest{Fun: fun, Args: wargs, Kwargs: wkwargs})
	if err != nil {
		return rpcError(c.Socket, fun, err)
	}
	var v any
	if reply.GetRet() != nil {
		v = reply.GetRet().AsInterface()
	}
	return render(v)
}

func (a *app) printNested(v any) error { return a.print(v, "text") }

// runnerTargetCmd is a runner command taking TARGET [ARG]: the target type
// travels as the tgt_type keyword. withType sends it always (the contract
// of show_sls); otherwise only when a target flag was given.
func (a *app) runnerTargetCmd(use, short, fun string, nargs int, withType bool) *cobra.Command {
	var t targetFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.ExactArgs(nargs)),
		RunE: func(cmd *cobra.Command, in []string) error {
			kw := map[string]any{}
			if tt := t.tgtType(); withType || tt != "glob" {
				kw["tgt_type"] = tt
			}
			pos := make([]any, len(in))
			for i, s := range in {
				pos[i] = s
			}
			return a.runner(cmd.Context(), fun, pos, kw, a.printNested)
		},
	}
	addTargetFlags(cmd.Flags(), &t)
	markTargetFlags(cmd)
	return cmd
}

func (a *app) pillarCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pillar", Short: "Inspect pillar data"}
	cmd.AddCommand(a.runnerTargetCmd("items TARGET", "Show the pillar the master compiles for the targeted minions",
		"pillar.items", 1, false))
	return cmd
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the master's status",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runner(cmd.Context(), "status", []any{}, map[string]any{}, a.printNested)
		},
	}
}

// ---- keys ----

var keyStateNames = map[string]string{
	"accepted": "accepted", "acc": "accepted",
	"pending": "pending", "pre": "pending", "un": "pending", "unaccepted": "pending",
	"rejected": "rejected", "rej": "rejected",
	"denied": "denied", "den": "denied",
	"all": "all",
}

func (a *app) keyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage minion keys (like salt-key)",
	}
	list := &cobra.Command{
		Use:   "list [accepted|pending|rejected|denied|all]",
		Short: "List minion keys by state (salt-key -L)",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, in []string) error {
			only := "all"
			if len(in) == 1 {
				var ok bool
				if only, ok = keyStateNames[in[0]]; !ok {
					return usageErr("unknown key state %q: use accepted, pending, rejected, denied or all", in[0])
				}
			}
			return a.runner(cmd.Context(), "key.list", []any{}, map[string]any{}, func(v any) error {
				if m, ok := v.(map[string]any); ok && only != "all" {
					v = map[string]any{only: m[only]}
				}
				return a.printKeys(v)
			})
		},
	}
	var all bool
	accept := a.keyChange("accept", "accepted", "Accept pending keys (salt-key -a)", &all)
	accept.Flags().BoolVarP(&all, "all", "A", false, "accept all pending keys (salt-key -A)")
	reject := a.keyChange("reject", "rejected", "Reject keys (salt-key -r)", nil)
	del := a.keyChange("delete", "deleted", "Delete keys (salt-key -d)", nil)
	finger := &cobra.Command{
		Use:   "finger [ID]",
		Short: "Show key fingerprints (salt-key -f / -F)",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, in []string) error {
			pos := []any{}
			if len(in) == 1 {
				pos = append(pos, in[0])
			}
			return a.runner(cmd.Context(), "key.finger", pos, map[string]any{}, a.printKeys)
		},
	}
	cmd.AddCommand(list, accept, reject, del, finger)
	return cmd
}

func (a *app) printKeys(v any) error {
	if a.format("text") == "text" {
		if s, ok := output.Keys(v, a.opts()); ok {
			if _, err := fmt.Fprint(a.env.Stdout, s); err != nil {
				return failErr(fmt.Errorf("write output: %w", err))
			}
			return nil
		}
	}
	return a.print(v, "text")
}

// keyChange builds accept/reject/delete. The master answers with the IDs
// it changed ({"accepted": [...]}); an ID asked for but not changed makes
// the exit status 1, as there was no such key in a state that allows it.
func (a *app) keyChange(verb, past, short string, all *bool) *cobra.Command {
	use := verb + " ID..."
	if all != nil {
		use = verb + " ID... | --all"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, in []string) error {
			kw := map[string]any{}
			switch {
			case all != nil && *all && len(in) > 0:
				return usageErr("give minion IDs or --all, not both")
			case all != nil && *all:
				kw["all"] = true
			case len(in) == 0:
				return usageErr("key %s needs at least one minion ID", verb)
			}
			pos := make([]any, len(in))
			for i, s := range in {
				pos[i] = s
			}
			return a.runner(cmd.Context(), "key."+verb, pos, kw, func(v any) error {
				if a.format("text") != "text" {
					return a.print(v, "text")
				}
				m, ok := v.(map[string]any)
				if !ok {
					return a.print(v, "text")
				}
				changed := map[string]bool{}
				for _, state := range sortedMapKeys(m) {
					ids, _ := m[state].([]any)
					for _, id := range ids {
						s := fmt.Sprint(id)
						changed[s] = true
						fmt.Fprintf(a.env.Stdout, "Key for minion %s %s.\n", output.Sanitize(s), output.Sanitize(state))
					}
				}
				code := exitOK
				for _, id := range in {
					if !changed[id] {
						fmt.Fprintf(a.env.Stderr, "No key for minion %s could be %s.\n", id, past)
						code = exitFailure
					}
				}
				if len(in) == 0 && len(changed) == 0 {
					fmt.Fprintf(a.env.Stdout, "No keys to %s.\n", verb)
				}
				return silentExit(code)
			})
		},
	}
}

func sortedMapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ---- minions and jobs ----

func (a *app) minionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "minions",
		Short: "List known minions: connection state, last contact, key grains",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runner(cmd.Context(), "minions.list", []any{}, map[string]any{}, func(v any) error {
				list, ok := v.([]any)
				if !ok || a.format("text") != "text" {
					return a.print(v, "text")
				}
				rows := make([][]string, 0, len(list))
				for _, e := range list {
					m, _ := e.(map[string]any)
					grains, _ := m["grains"].(map[string]any)
					state := "down"
					if b, _ := m["connected"].(bool); b {
						state = "up"
					}
					rows = append(rows, []string{
						str(m["id"]), state, a.ago(m["last_seen"]),
						strings.TrimSpace(str(grains["os"]) + " " + str(grains["osrelease"])),
						str(grains["roles"]), str(grains["env"]),
					})
				}
				sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
				return writeTable(a, []string{"ID", "STATE", "LAST SEEN", "OS", "ROLES", "ENV"}, rows)
			})
		},
	}
}

func writeTable(a *app, header []string, rows [][]string) error {
	if err := output.Table(a.env.Stdout, header, rows); err != nil {
		return failErr(err)
	}
	return nil
}

func (a *app) jobCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Look at the master's job cache"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List recent jobs (salt-run jobs.list_jobs)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runner(cmd.Context(), "job.list", []any{}, map[string]any{}, func(v any) error {
				list, ok := v.([]any)
				if !ok || a.format("text") != "text" {
					return a.print(v, "text")
				}
				rows := make([][]string, 0, len(list))
				for _, e := range list {
					m, _ := e.(map[string]any)
					target := str(m["target"])
					if tt := str(m["tgt_type"]); tt != "" && tt != "glob" {
						target += " (" + tt + ")"
					}
					rows = append(rows, []string{
						str(m["jid"]), str(m["fun"]), target, str(m["user"]), a.when(m["start_time"]),
						count(m["returned"]) + "/" + count(m["minions"]),
					})
				}
				return writeTable(a, []string{"JID", "FUNCTION", "TARGET", "USER", "STARTED", "RETURNED"}, rows)
			})
		},
	}
	show := &cobra.Command{
		Use:   "show JID",
		Short: "Show a job and its returns (salt-run jobs.lookup_jid)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, in []string) error {
			return a.runner(cmd.Context(), "job.show", []any{in[0]}, map[string]any{}, a.printNested)
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

// str renders a table cell from JSON data.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, str(e))
		}
		return strings.Join(parts, ",")
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// count reads a minion count given either as a number or as the list of IDs.
func count(v any) string {
	switch x := v.(type) {
	case []any:
		return strconv.Itoa(len(x))
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return "0"
	}
	return str(v)
}

// parseTime accepts RFC 3339 text or Unix seconds.
func parseTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t, true
		}
	case float64:
		if x > 0 && !math.IsInf(x, 0) {
			sec, frac := math.Modf(x)
			return time.Unix(int64(sec), int64(frac*1e9)), true
		}
	}
	return time.Time{}, false
}

// ago renders a past time relative to now: "12s ago", "3m ago", "2h ago",
// "5d ago"; unparseable times are shown as they came.
func (a *app) ago(v any) string {
	t, ok := parseTime(v)
	if !ok {
		return str(v)
	}
	d := a.env.Now().Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func (a *app) when(v any) string {
	t, ok := parseTime(v)
	if !ok {
		return str(v)
	}
	return t.In(a.env.Location).Format("2006-01-02 15:04:05")
}

// ---- reactor ----

func (a *app) reactorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "reactor", Short: "Inspect the reactor"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List reactor tags and the SLS files they run (salt-run reactor.list)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runner(cmd.Context(), "reactor.list", []any{}, map[string]any{}, func(v any) error {
				list, ok := v.([]any)
				if !ok || a.format("text") != "text" {
					return a.print(v, "text")
				}
				// Salt prints the reactor map as tag: [files] in config order.
				om := make(output.OrderedMap, 0, len(list))
				for _, e := range list {
					m, _ := e.(map[string]any)
					om = append(om, output.KV{Key: str(m["tag"]), Value: m["files"]})
				}
				return a.print(om, "text")
			})
		},
	})
	return cmd
}
