package master

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/brine-cm/brine/pkg/state/render"
	"github.com/brine-cm/brine/pkg/target"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// topMatcher lets top files target with the same engine as jobs.
type topMatcher struct{}

func (topMatcher) Match(expr, tgtType, id string, grains map[string]any) (bool, error) {
	typ, err := target.ParseType(tgtType)
	if err != nil {
		return false, err
	}
	mt, err := target.Compile(expr, typ)
	if err != nil {
		return false, err
	}
	return mt.Match(id, grains), nil
}

func (m *Master) newTree() *render.Tree {
	t := &render.Tree{FileRoots: m.cfg.FileRoots, PillarRoots: m.cfg.PillarRoots, Matcher: topMatcher{}, Funcs: m}
	// LoadMaster has already refused bad jinja_*env options, so an error
	// here can only come from a config built in code; render with Salt's
	// defaults then.
	if sls, files, err := m.cfg.JinjaWhitespace(); err == nil {
		t.Jinja = render.JinjaSettings{
			SLS:   render.JinjaEnv{TrimBlocks: sls[0], LstripBlocks: sls[1]},
			Files: render.JinjaEnv{TrimBlocks: files[0], LstripBlocks: files[1]},
		}
	}
	return t
}

func (m *Master) setupStates() error {
	m.tree.Store(m.newTree())
	for _, fun := range []string{"state.apply", "state.sls", "state.highstate"} {
		m.preparers[fun] = m.prepareState
	}
	m.runners["state.show_sls"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.perMinion(ctx, args, kwargs, func(ctx context.Context, mn render.Minion, opts render.Options) (any, error) {
			mods, err := modsArg(args[1:], kwargs)
			if err != nil {
				return nil, err
			}
			if len(mods) == 0 {
				return nil, badArg("state.show_sls: name the SLS to show")
			}
			return m.currentTree().SLS(ctx, mn, mods, opts)
		})
	}
	m.runners["state.show_highstate"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.perMinion(ctx, args, kwargs, func(ctx context.Context, mn render.Minion, opts render.Options) (any, error) {
			return m.currentTree().Highstate(ctx, mn, opts)
		})
	}
	m.runners["state.show_top"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.perMinion(ctx, args, kwargs, func(ctx context.Context, mn render.Minion, opts render.Options) (any, error) {
			return m.currentTree().Top(ctx, mn, opts)
		})
	}
	m.runners["pillar.items"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.perMinion(ctx, args, kwargs, func(ctx context.Context, mn render.Minion, opts render.Options) (any, error) {
			return m.currentTree().Pillar(ctx, mn, opts)
		})
	}
	return nil
}

func (m *Master) currentTree() *render.Tree { return m.tree.Load() }

// perMinion runs a render-side function for every known minion a target
// matches; a failure on one minion is that minion's answer, not the call's.
func (m *Master) perMinion(ctx context.Context, args []any, kwargs map[string]any, fn func(context.Context, render.Minion, render.Options) (any, error)) (any, error) {
	tgt, err := argString(args, kwargs, 0, "tgt", true)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		args = []any{tgt}
	}
	opts, err := renderOptions(kwargs)
	if err != nil {
		return nil, err
	}
	ids, err := m.resolve(tgt, tgtTypeArg(kwargs))
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, id := range ids {
		mn, ok := m.reg.Get(id)
		if !ok {
			out[id] = []any{"minion " + id + " has never connected: its grains are unknown"}
			continue
		}
		v, err := fn(ctx, render.Minion{ID: id, Grains: mn.Grains}, opts)
		if err != nil {
			out[id] = []any{err.Error()}
			continue
		}
		n, err := wire.Normalize(v)
		if err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, nil
}

func renderOptions(kwargs map[string]any) (render.Options, error) {
	opts := render.Options{Saltenv: "base"}
	if s, ok := kwargs["saltenv"].(string); ok && s != "" {
		opts.Saltenv = s
	}
	switch t := kwargs["test"].(type) {
	case bool:
		opts.Test = t
	case string:
		opts.Test = strings.EqualFold(t, "true")
	}
	switch p := kwargs["pillar"].(type) {
	case nil:
	case map[string]any:
		opts.Pillar = p
	case string:
		if err := json.Unmarshal([]byte(p), &opts.Pillar); err != nil {
			return opts, badArg("pillar=%q is not a JSON object: %v", p, err)
		}
	default:
		return opts, badArg("pillar must be a mapping, got %T", p)
	}
	return opts, nil
}

// modsArg reads Salt's `mods`: positional or keyword, a comma-separated
// string or a list.
func modsArg(args []any, kwargs map[string]any) ([]string, error) {
	var raw any
	if len(args) > 0 {
		raw = args[0]
	} else if v, ok := kwargs["mods"]; ok {
		raw = v
	}
	var mods []string
	switch v := raw.(type) {
	case nil:
	case string:
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				mods = append(mods, s)
			}
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, badArg("mods must be SLS names")
			}
			mods = append(mods, s)
		}
	default:
		return nil, badArg("mods must be a string or a list, got %T", raw)
	}
	return mods, nil
}

// prepareState renders and compiles the states for one minion and puts the
// low chunks into the job: the minion applies what the master compiled and
// never needs the state tree or other minions' data.
func (m *Master) prepareState(ctx context.Context, id string, grains map[string]any, j *pb.Job) error {
	args := wire.Args(j.GetArgs())
	kwargs := wire.Map(j.GetKwargs())
	opts, err := renderOptions(kwargs)
	if err != nil {
		return err
	}
	mods, err := modsArg(args, kwargs)
	if err != nil {
		return err
	}
	// state.sls(mods, saltenv): Salt's second positional argument, as
	// reactions write it (`arg: [web.deploy, prod]`).
	if _, set := kwargs["saltenv"]; !set && j.GetFun() == "state.sls" && len(args) > 1 {
		env, ok := args[1].(string)
		if !ok || env == "" {
			return badArg("state.sls: saltenv (the second argument) must be an environment name, got %v", args[1])
		}
		opts.Saltenv = env
	}
	start := time.Now()
	tree := m.currentTree()
	mn := render.Minion{ID: id, Grains: grains}
	var chunks any
	if j.GetFun() == "state.highstate" || len(mods) == 0 {
		chunks, err = tree.Highstate(ctx, mn, opts)
	} else {
		chunks, err = tree.SLS(ctx, mn, mods, opts)
	}
	m.metrics.renderSecs.Observe(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("rendering states for %s: %w", id, err)
	}
	kwargs["__chunks__"] = chunks
	kwargs["__test__"] = opts.Test
	kw, err := wire.Struct(kwargs)
	if err != nil {
		return fmt.Errorf("compiled states for %s: %w", id, err)
	}
	j.Kwargs = kw
	return nil
}
