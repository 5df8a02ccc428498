package minion

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/brine-cm/brine/pkg/exec"
	"github.com/brine-cm/brine/pkg/state"
	"github.com/brine-cm/brine/pkg/state/apply"
)

// registerFunctions adds the execution functions that need the minion
// itself (its mine scheduler, its state applier) to the registry.
func (m *Minion) registerFunctions() {
	m.exec.Register("mine.update", func(ctx context.Context, env *exec.Env, args []any, kwargs map[string]any) (any, error) {
		if err := m.mine.Refresh(ctx, true); err != nil {
			return nil, err
		}
		return true, nil
	}, exec.Doc{Summary: "Run every mine function now and send the results to the master (Salt's mine.update)."})
	m.exec.Register("mine.send", func(ctx context.Context, env *exec.Env, args []any, kwargs map[string]any) (any, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("%w: mine.send takes the mine function's name", exec.ErrBadArgs)
		}
		name, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("%w: mine.send: name must be a string", exec.ErrBadArgs)
		}
		if err := m.mine.Send(ctx, name); err != nil {
			return nil, err
		}
		return true, nil
	}, exec.Doc{Summary: "Run one configured mine function now and send it (Salt's mine.send).", Args: []exec.ArgDoc{{Name: "name"}}})
	for _, name := range []string{"state.apply", "state.sls", "state.highstate"} {
		m.exec.Register(name, m.stateRun, exec.Doc{
			Summary: "Apply states. The master renders and compiles them for this minion and sends the low chunks; test=True predicts changes without making them.",
			Args:    []exec.ArgDoc{{Name: "mods"}, {Name: "test"}, {Name: "pillar"}, {Name: "saltenv"}},
		})
	}
}

// stateRun applies the chunks the master compiled for this minion.
func (m *Minion) stateRun(ctx context.Context, env *exec.Env, args []any, kwargs map[string]any) (any, error) {
	raw, ok := kwargs["__chunks__"]
	if !ok {
		return nil, fmt.Errorf("%w: no compiled states in the job (state functions must come from the master)", exec.ErrBadArgs)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var chunks []state.Chunk
	if err := json.Unmarshal(b, &chunks); err != nil {
		return nil, fmt.Errorf("compiled states: %w", err)
	}
	test, _ := kwargs["__test__"].(bool)
	jid, _ := kwargs["__jid__"].(string)
	wait := true
	if q, set := kwargs["queue"]; set {
		wait = truthy(q)
	}
	release, err := m.states.acquire(ctx, "state run", jid, wait)
	if err != nil {
		return nil, err
	}
	defer release()
	aenv := &apply.Env{HostsFile: m.cfg.HostsFile, Test: test, Logger: m.log, InitDir: m.cfg.InitDir}
	results := apply.Run(ctx, aenv, apply.Default(aenv), chunks)
	out := make(map[string]any, len(results))
	failed := false
	for i, r := range results {
		key := chunks[i].Key()
		if i < len(chunks) {
			key = keyFor(chunks, r)
		}
		out[key] = r
		if r.Result != nil && !*r.Result {
			failed = true
		}
	}
	if failed {
		return jobFailure{ret: out, retcode: 2}, nil
	}
	return out, nil
}

// keyFor finds the chunk a result belongs to (results come in run order,
// which may differ from the compiled order when prereq reorders).
func keyFor(chunks []state.Chunk, r state.Result) string {
	for _, c := range chunks {
		if c.ID == r.ID && c.Name == r.Name && c.State+"."+c.Fun == r.Function {
			return c.Key()
		}
	}
	return r.ID
}

// truthy reads a flag the way Salt's CLI arguments arrive: a YAML bool or
// its string spellings.
func truthy(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		switch strings.ToLower(t) {
		case "true", "yes", "on", "1":
			return true
		}
	case float64:
		return t != 0
	case int64:
		return t != 0
	case int:
		return t != 0
	}
	return false
}
