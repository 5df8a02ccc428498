package exec

import (
	"context"
	"errors"
	"fmt"
)

var errNoMaster = errors.New("no connection to the master")

func registerEvent(r *Registry) {
	r.RegisterBound("event.send", Doc{
		Summary: "Fire an event on the master's bus with this minion's id; extra keyword arguments become keys of the data, as in Salt.",
		Args: []ArgDoc{
			{Name: "tag", Type: Str, Required: true, Doc: "event tag, e.g. `myco/deploy/done`"},
			{Name: "data", Type: Dict, Doc: "event data"},
			{Name: "with_grains", Type: Any, Default: false, Doc: "true adds all grains under `grains`; a list adds only those grains"},
		},
		Kwargs:  true,
		Returns: "True",
		Example: "brinectl '*' event.send myco/deploy/done '{\"version\": \"1.2\"}'",
	}, func(ctx context.Context, env *Env, a *Args) (any, error) {
		tag := a.Str("tag")
		if tag == "" {
			return nil, badArg("event.send", "tag", "must not be empty")
		}
		data := map[string]any{}
		for k, v := range a.RestKw {
			data[k] = v
		}
		for k, v := range a.Dict("data") {
			data[k] = v
		}
		switch wg := a.Value("with_grains").(type) {
		case bool:
			if wg {
				data["grains"] = env.grains()
			}
		case []any:
			g := env.grains()
			sel := map[string]any{}
			for i, k := range wg {
				name, ok := k.(string)
				if !ok {
					return nil, badArg("event.send", "with_grains", "item %d: expected a grain name, got %s", i, describe(k))
				}
				if v, ok := g[name]; ok {
					sel[name] = v
				}
			}
			data["grains"] = sel
		case nil:
		default:
			return nil, badArg("event.send", "with_grains", "expected a bool or a list of grain names, got %s", describe(wg))
		}
		return sendEvent(ctx, env, "event.send", tag, data)
	})

	r.RegisterBound("event.fire_master", Doc{
		Summary: "Fire an event on the master's bus (Salt's older spelling of event.send, data first).",
		Args: []ArgDoc{
			{Name: "data", Type: Dict, Required: true, Doc: "event data"},
			{Name: "tag", Type: Str, Required: true, Doc: "event tag"},
		},
		Returns: "True",
	}, func(ctx context.Context, env *Env, a *Args) (any, error) {
		if a.Str("tag") == "" {
			return nil, badArg("event.fire_master", "tag", "must not be empty")
		}
		data := a.Dict("data")
		if data == nil {
			data = map[string]any{}
		}
		return sendEvent(ctx, env, "event.fire_master", a.Str("tag"), data)
	})
}

func sendEvent(ctx context.Context, env *Env, fun, tag string, data map[string]any) (any, error) {
	if env.Master == nil {
		return nil, fmt.Errorf("%s: %w", fun, errNoMaster)
	}
	if err := env.Master.SendEvent(ctx, tag, data); err != nil {
		return nil, fmt.Errorf("%s %s: %w", fun, tag, err)
	}
	return true, nil
}
