package render

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/brine-cm/brine/pkg/jinja"
)

// renderCtx is what one render of one SLS (or top/pillar file) sees.
type renderCtx struct {
	ctx     context.Context
	tree    *Tree
	minion  Minion
	opts    Options
	pillar  map[string]any
	saltenv string
	roots   map[string][]string
}

// vars builds the Jinja context Salt gives SLS files.
func (rc *renderCtx) vars(sls, file string) map[string]any {
	slsPath := strings.ReplaceAll(sls, ".", "/")
	dir := slsPath
	if !strings.HasSuffix(file, "/init.sls") {
		dir = path.Dir(slsPath)
		if dir == "." {
			dir = ""
		}
	}
	grains := rc.minion.Grains
	if grains == nil {
		grains = map[string]any{}
	}
	pillar := rc.pillar
	if pillar == nil {
		pillar = map[string]any{}
	}
	return map[string]any{
		"grains":   grains,
		"pillar":   pillar,
		"saltenv":  rc.saltenv,
		"env":      rc.saltenv,
		"sls":      sls,
		"slspath":  dir,
		"sls_path": strings.ReplaceAll(sls, ".", "_"),
		"tpldir":   dir,
		"tplfile":  slsPath + ".sls",
		"opts": map[string]any{
			"id":      rc.minion.ID,
			"saltenv": rc.saltenv,
			"test":    rc.opts.Test,
			"grains":  grains,
			"pillar":  pillar,
		},
		"salt": rc.saltFuncs(),
	}
}

// loader resolves {% import/include %} names: "./x" and "../x" relative to
// the importing file's directory, anything else from the roots.
func (rc *renderCtx) loader(dir string) jinja.Loader {
	return func(name string) (string, error) {
		rel := name
		if strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../") {
			rel = path.Join(dir, name)
		}
		b, _, err := readFrom(rc.roots, rc.saltenv, "salt://"+strings.TrimPrefix(rel, "salt://"))
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
}

func (rc *renderCtx) saltFuncs() map[string]any {
	return map[string]any{
		"mine.get":   jinja.Func(rc.mineGet),
		"pillar.get": jinja.Func(func(a []any, kw map[string]any) (any, error) { return traverseCall("pillar.get", rc.pillar, a, kw) }),
		"grains.get": jinja.Func(func(a []any, kw map[string]any) (any, error) {
			return traverseCall("grains.get", rc.minion.Grains, a, kw)
		}),
		"config.get":  jinja.Func(rc.configGet),
		"grains.item": jinja.Func(func(a []any, kw map[string]any) (any, error) { return items(rc.minion.Grains, a), nil }),
		"pillar.item": jinja.Func(func(a []any, kw map[string]any) (any, error) { return items(rc.pillar, a), nil }),
		"grains.items": jinja.Func(func(a []any, kw map[string]any) (any, error) {
			return rc.minion.Grains, nil
		}),
		"pillar.items": jinja.Func(func(a []any, kw map[string]any) (any, error) { return rc.pillar, nil }),
		"test.ping":    jinja.Func(func(a []any, kw map[string]any) (any, error) { return true, nil }),
	}
}

func (rc *renderCtx) mineGet(args []any, kwargs map[string]any) (any, error) {
	if rc.tree.Funcs == nil {
		return nil, errors.New("the mine is not available to this render")
	}
	tgt, fun, tgtType := "", "", "glob"
	if len(args) < 2 || len(args) > 3 {
		return nil, fmt.Errorf("mine.get(tgt, fun, tgt_type='glob') takes 2 or 3 arguments, got %d", len(args))
	}
	tgt, _ = args[0].(string)
	fun, _ = args[1].(string)
	if len(args) == 3 {
		tgtType, _ = args[2].(string)
	}
	for _, k := range []string{"tgt_type", "expr_form"} {
		if v, ok := kwargs[k]; ok {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("mine.get: %s must be a string", k)
			}
			tgtType = s
		}
	}
	if tgt == "" || fun == "" {
		return nil, errors.New("mine.get: tgt and fun must be non-empty strings")
	}
	res, err := rc.tree.Funcs.MineGet(rc.ctx, rc.minion.ID, tgt, fun, tgtType)
	if err != nil {
		return nil, fmt.Errorf("mine.get(%q, %q, tgt_type=%q): %w", tgt, fun, tgtType, err)
	}
	if res == nil {
		res = map[string]any{}
	}
	return res, nil
}

// configGet is Salt's config.get for what the master knows: pillar first,
// then grains, then the default.
func (rc *renderCtx) configGet(args []any, kwargs map[string]any) (any, error) {
	key, def, delim, err := getArgs("config.get", args, kwargs)
	if err != nil {
		return nil, err
	}
	if v, ok := traverse(rc.pillar, key, delim); ok {
		return v, nil
	}
	if v, ok := traverse(rc.minion.Grains, key, delim); ok {
		return v, nil
	}
	return def, nil
}

func traverseCall(fn string, data map[string]any, args []any, kwargs map[string]any) (any, error) {
	key, def, delim, err := getArgs(fn, args, kwargs)
	if err != nil {
		return nil, err
	}
	if v, ok := traverse(data, key, delim); ok {
		return v, nil
	}
	return def, nil
}

func getArgs(fn string, args []any, kwargs map[string]any) (key string, def any, delim string, err error) {
	def, delim = "", ":"
	if len(args) < 1 || len(args) > 2 {
		if k, ok := kwargs["key"]; ok && len(args) == 0 {
			args = []any{k}
		} else {
			return "", nil, "", fmt.Errorf("%s(key, default='') takes 1 or 2 arguments, got %d", fn, len(args))
		}
	}
	key, ok := args[0].(string)
	if !ok {
		return "", nil, "", fmt.Errorf("%s: key must be a string, got %v", fn, args[0])
	}
	if len(args) == 2 {
		def = args[1]
	}
	if v, ok := kwargs["default"]; ok {
		def = v
	}
	if v, ok := kwargs["delimiter"].(string); ok && v != "" {
		delim = v
	}
	return key, def, delim, nil
}

// traverse walks a colon path through dicts and lists (by index), as
// Salt's traverse_dict_and_list does.
func traverse(data map[string]any, key, delim string) (any, bool) {
	if data == nil {
		return nil, false
	}
	if v, ok := data[key]; ok {
		return v, true
	}
	var cur any = data
	for _, part := range strings.Split(key, delim) {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[part]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			cur = x[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func items(data map[string]any, keys []any) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if s, ok := k.(string); ok {
			if v, ok := traverse(data, s, ":"); ok {
				out[s] = v
			}
		}
	}
	return out
}
