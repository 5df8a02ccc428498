package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Top returns, per saltenv, the SLS names the state top file assigns to
// this minion, in top-file order.
func (t *Tree) Top(ctx context.Context, m Minion, opts Options) (map[string][]string, error) {
	pillar, err := t.pillar(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	top, _, err := t.top(ctx, t.FileRoots, m, opts, pillar)
	return top, err
}

// top renders every environment's top.sls (only opts.Saltenv's when set)
// and matches its targets against the minion.
func (t *Tree) top(ctx context.Context, roots map[string][]string, m Minion, opts Options, pillar *omap) (map[string][]string, []string, error) {
	out := map[string][]string{}
	var order []string
	for _, env := range envs(roots) {
		if opts.Saltenv != "" && env != opts.Saltenv {
			continue
		}
		src, file, err := readFrom(roots, env, "salt://top.sls")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		rc := &renderCtx{ctx: ctx, tree: t, minion: m, opts: opts, pillar: pillar, saltenv: env, roots: roots}
		data, err := renderSource(file, src, rc.vars("top", file), rc.jinjaOptions(file, "top.sls", t.Jinja.SLS))
		if err != nil {
			return nil, nil, err
		}
		if data == nil {
			continue
		}
		envMap, ok := data.(*omap)
		if !ok {
			return nil, nil, fmt.Errorf("%s: a top file maps environments to targets, got %T", file, data)
		}
		for _, tenv := range envMap.keys {
			if opts.Saltenv != "" && tenv != opts.Saltenv {
				continue
			}
			p := envMap.pos[tenv]
			targets, ok := envMap.vals[tenv].(*omap)
			if !ok {
				if envMap.vals[tenv] == nil {
					continue
				}
				return nil, nil, fmt.Errorf("%s:%d: environment %q must map targets to SLS lists", file, p.line, tenv)
			}
			for _, tgt := range targets.keys {
				tp := targets.pos[tgt]
				list, ok := targets.vals[tgt].([]any)
				if !ok {
					return nil, nil, fmt.Errorf("%s:%d: target %q must be a list of SLS names", file, tp.line, tgt)
				}
				matchType := "glob"
				var names []string
				for _, item := range list {
					switch x := item.(type) {
					case string:
						names = append(names, x)
					case *omap:
						if mt, ok := x.get("match"); ok {
							s, ok := mt.(string)
							if !ok {
								return nil, nil, fmt.Errorf("%s:%d: target %q: match must be a string", file, tp.line, tgt)
							}
							matchType = s
						}
					default:
						return nil, nil, fmt.Errorf("%s:%d: target %q: %v is not an SLS name", file, tp.line, tgt, item)
					}
				}
				if t.Matcher == nil {
					return nil, nil, fmt.Errorf("%s: no matcher configured for top-file targeting", file)
				}
				ok, err := t.Matcher.Match(tgt, matchType, m.ID, m.Grains)
				if err != nil {
					return nil, nil, fmt.Errorf("%s:%d: target %q (match: %s): %w", file, tp.line, tgt, matchType, err)
				}
				if !ok {
					continue
				}
				if _, seen := out[tenv]; !seen {
					order = append(order, tenv)
				}
				for _, n := range names {
					if !slices.Contains(out[tenv], n) {
						out[tenv] = append(out[tenv], n)
					}
				}
				if _, seen := out[tenv]; !seen {
					out[tenv] = []string{}
				}
			}
		}
	}
	return out, order, nil
}

// Pillar compiles the pillar this minion may see: the pillar top file's
// matches, merged in top order, then opts.Pillar on top.
func (t *Tree) Pillar(ctx context.Context, m Minion, opts Options) (map[string]any, error) {
	p, err := t.pillar(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	return plain(p).(map[string]any), nil
}

// pillar is Pillar in YAML order, which templates iterate in.
func (t *Tree) pillar(ctx context.Context, m Minion, opts Options) (*omap, error) {
	merged := newOmap()
	if len(t.PillarRoots) > 0 {
		popts := opts
		popts.Saltenv = ""
		top, order, err := t.top(ctx, t.PillarRoots, m, popts, newOmap())
		if err != nil {
			return nil, fmt.Errorf("pillar: %w", err)
		}
		for _, env := range order {
			seen := map[string]bool{}
			for _, sls := range top[env] {
				data, err := t.pillarSLS(ctx, m, opts, env, sls, merged, seen)
				if err != nil {
					return nil, fmt.Errorf("pillar: %w", err)
				}
				merged = mergeOmap(merged, data)
			}
		}
	}
	if opts.Pillar != nil {
		merged = mergeOmap(merged, ordered(opts.Pillar).(*omap))
	}
	return merged, nil
}

func (t *Tree) pillarSLS(ctx context.Context, m Minion, opts Options, env, sls string, sofar *omap, seen map[string]bool) (*omap, error) {
	if seen[sls] {
		return newOmap(), nil
	}
	seen[sls] = true
	src, file, err := slsFile(t.PillarRoots, env, sls)
	if err != nil {
		return nil, err
	}
	rc := &renderCtx{ctx: ctx, tree: t, minion: m, opts: opts, pillar: sofar, saltenv: env, roots: t.PillarRoots}
	data, err := renderSource(file, src, rc.vars(sls, file), rc.jinjaOptions(file, slsRel(sls, file), t.Jinja.SLS))
	if err != nil {
		return nil, err
	}
	if data == nil {
		return newOmap(), nil
	}
	out, ok := data.(*omap)
	if !ok {
		return nil, fmt.Errorf("%s: pillar must render to a mapping, got %s", file, typeName(data))
	}
	var includes []any
	if inc, ok := out.get("include"); ok {
		includes, ok = inc.([]any)
		if !ok {
			return nil, fmt.Errorf("%s:%d: include must be a list", file, out.pos["include"].line)
		}
		out.del("include")
	}
	for _, inc := range includes {
		name, key := "", ""
		switch x := inc.(type) {
		case string:
			name = x
		case *omap:
			if len(x.keys) != 1 {
				return nil, fmt.Errorf("%s: include entry must name one SLS", file)
			}
			name = x.keys[0]
			if opt, ok := x.vals[name].(*omap); ok {
				if k, ok := opt.get("key"); ok {
					key, _ = k.(string)
				}
			}
		default:
			return nil, fmt.Errorf("%s: include entry %v is not an SLS name", file, inc)
		}
		name, err := resolveRelative(sls, file, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		sub, err := t.pillarSLS(ctx, m, opts, env, name, sofar, seen)
		if err != nil {
			return nil, includedFrom(err, fmt.Sprintf("%s (pillar SLS %s)", file, sls))
		}
		if key != "" {
			parts := strings.Split(key, ":")
			for i := len(parts) - 1; i >= 0; i-- {
				wrap := newOmap()
				wrap.set(parts[i], sub, pos{})
				sub = wrap
			}
		}
		// Salt merges included pillar over the including file's.
		out = mergeOmap(out, sub)
	}
	return out, nil
}

// resolveRelative turns Salt's relative include (.foo, ..foo) into a full
// dotted name: one dot is the including file's package, each further dot
// goes up one level.
func resolveRelative(sls, file, name string) (string, error) {
	if !strings.HasPrefix(name, ".") {
		return name, nil
	}
	dots := len(name) - len(strings.TrimLeft(name, "."))
	rest := name[dots:]
	base := strings.Split(sls, ".")
	if !(strings.HasSuffix(file, "/init.sls") || strings.HasSuffix(file, "\\init.sls")) {
		base = base[:len(base)-1]
	}
	up := dots - 1
	if up > len(base) {
		return "", fmt.Errorf("relative include %q goes above the top of the tree from %q", name, sls)
	}
	base = base[:len(base)-up]
	if rest == "" {
		if len(base) == 0 {
			return "", fmt.Errorf("relative include %q from %q names nothing", name, sls)
		}
		return strings.Join(base, "."), nil
	}
	return strings.Join(append(base, rest), "."), nil
}
