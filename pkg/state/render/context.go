package render

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
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
	pillar  *omap // in YAML order
	saltenv string
	roots   map[string][]string
}

// templateValue hands ordered YAML data to the template engine, which
// iterates anything with Keys/Get in that order (as Python dicts from
// Salt's loader are).
func templateValue(m *omap) any {
	if m == nil {
		return newOmap()
	}
	return m
}

// slsContext is Salt's per-file context (salt.utils.templates
// generate_sls_context) for a template at rel, relative to its file root,
// rendered for SLS sls: tplfile is rel, tpldir its directory ("." at the
// top), tpldot the same with dots, tplroot its first component; slspath,
// slsdotpath, slscolonpath and sls_path are the SLS file's directory
// ("" at the top) with /, ., : and _ between the parts.
func slsContext(sls, rel string) map[string]any {
	dir := path.Dir(rel)
	if dir == "." {
		dir = ""
	}
	tpldir := dir
	if tpldir == "" {
		tpldir = "."
	}
	return map[string]any{
		"sls":          sls,
		"tplfile":      rel,
		"tpldir":       tpldir,
		"tpldot":       strings.ReplaceAll(dir, "/", "."),
		"tplroot":      strings.Split(tpldir, "/")[0],
		"slspath":      dir,
		"slsdotpath":   strings.ReplaceAll(dir, "/", "."),
		"slscolonpath": strings.ReplaceAll(dir, "/", ":"),
		"sls_path":     strings.ReplaceAll(dir, "/", "_"),
	}
}

// slsRel is an SLS file's path relative to its root: a/b.sls or
// a/b/init.sls.
func slsRel(sls, file string) string {
	p := strings.ReplaceAll(sls, ".", "/")
	if strings.HasSuffix(filepath.ToSlash(file), "/"+p+"/init.sls") || filepath.ToSlash(file) == p+"/init.sls" {
		return p + "/init.sls"
	}
	return p + ".sls"
}

// vars builds the Jinja context Salt gives SLS files.
func (rc *renderCtx) vars(sls, file string) map[string]any {
	return rc.templateVars(sls, slsRel(sls, file), file)
}

// templateVars is vars for any template: rel is its path under the file
// root, file where it was read from.
func (rc *renderCtx) templateVars(sls, rel, file string) map[string]any {
	grains := rc.minion.Grains
	if grains == nil {
		grains = map[string]any{}
	}
	pillar := templateValue(rc.pillar)
	vars := map[string]any{
		"grains":  grains,
		"pillar":  pillar,
		"saltenv": rc.saltenv,
		"env":     rc.saltenv,
		"tplpath": file,
		"opts":    rc.optsValue(grains, pillar),
		"salt":    rc.saltFuncs(),
	}
	for k, v := range slsContext(sls, rel) {
		vars[k] = v
	}
	return vars
}

func (rc *renderCtx) optsValue(grains, pillar any) map[string]any {
	return map[string]any{
		"id":      rc.minion.ID,
		"saltenv": rc.saltenv,
		"test":    rc.opts.Test,
		"grains":  grains,
		"pillar":  pillar,
	}
}

// jinjaOptions are the engine options for rendering the template at rel
// (relative to its root; file is where it was read from): imports and
// includes resolve through the roots, "./x" and "../x" against the
// importing template, and whitespace follows jinja_sls_env or jinja_env.
func (rc *renderCtx) jinjaOptions(file, rel string, env JinjaEnv) jinja.Options {
	return jinja.Options{
		TrimBlocks:   env.TrimBlocks,
		LstripBlocks: env.LstripBlocks,
		Resolve: func(from, name string) (string, string, error) {
			if from == file {
				from = rel
			}
			target := strings.TrimPrefix(name, "salt://")
			if strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../") {
				target = jinja.RelativeName(from, name)
				if target == ".." || strings.HasPrefix(target, "../") {
					return "", "", fmt.Errorf("%q imported from %s leaves the file roots", name, from)
				}
			}
			b, _, err := readFrom(rc.roots, rc.saltenv, "salt://"+target)
			if err != nil {
				return "", "", err
			}
			return target, string(b), nil
		},
	}
}

func (rc *renderCtx) saltFuncs() map[string]any {
	return map[string]any{
		"mine.get":   jinja.Func(rc.mineGet),
		"pillar.get": jinja.Func(rc.pillarGet),
		"grains.get": jinja.Func(func(a []any, kw map[string]any) (any, error) {
			return traverseCall("grains.get", rc.minion.Grains, a, kw)
		}),
		"config.get":       jinja.Func(rc.configGet),
		"grains.filter_by": jinja.Func(rc.filterBy),
		"grains.item":      jinja.Func(func(a []any, kw map[string]any) (any, error) { return items(rc.minion.Grains, a), nil }),
		"pillar.item":      jinja.Func(func(a []any, kw map[string]any) (any, error) { return items(rc.pillar, a), nil }),
		"grains.items": jinja.Func(func(a []any, kw map[string]any) (any, error) {
			return rc.minion.Grains, nil
		}),
		"pillar.items": jinja.Func(func(a []any, kw map[string]any) (any, error) { return templateValue(rc.pillar), nil }),
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

// configGet is Salt's config.get for what the master knows, in Salt's
// order: the minion's options, grains, pillar, then pillar['master'].
func (rc *renderCtx) configGet(args []any, kwargs map[string]any) (any, error) {
	key, def, delim, err := getArgs("config.get", args, kwargs)
	if err != nil {
		return nil, err
	}
	sources := []any{rc.optsValue(rc.minion.Grains, nil), rc.minion.Grains, rc.pillar}
	if master, ok := rc.pillar.get("master"); ok {
		sources = append(sources, master)
	}
	for _, src := range sources {
		if v, ok := traverse(src, key, delim); ok {
			return outValue(v), nil
		}
	}
	return def, nil
}

// pillarGet is Salt's pillar.get(key, default=”, merge=False,
// delimiter=':'): with merge=True a dict default is the base the pillar's
// dict is merged over (a list default is extended by the pillar's list),
// which is how formulas layer pillar over their defaults.
func (rc *renderCtx) pillarGet(args []any, kwargs map[string]any) (any, error) {
	key, def, delim, err := getArgs("pillar.get", args, kwargs)
	if err != nil {
		return nil, err
	}
	v, found := traverse(rc.pillar, key, delim)
	if !found {
		return def, nil
	}
	if merge, _ := kwargs["merge"].(bool); merge {
		switch d := def.(type) {
		case map[string]any:
			if om, ok := v.(*omap); ok {
				return mergeOmap(ordered(d).(*omap), om), nil
			}
			return nil, fmt.Errorf("pillar.get(%q, merge=True): the default is a dict but the pillar value is %s", key, typeName(v))
		case []any:
			if ol, ok := v.([]any); ok {
				return append(slices.Clone(d), ol...), nil
			}
			return nil, fmt.Errorf("pillar.get(%q, merge=True): the default is a list but the pillar value is %s", key, typeName(v))
		}
	}
	return outValue(v), nil
}

func traverseCall(fn string, data any, args []any, kwargs map[string]any) (any, error) {
	key, def, delim, err := getArgs(fn, args, kwargs)
	if err != nil {
		return nil, err
	}
	if v, ok := traverse(data, key, delim); ok {
		return outValue(v), nil
	}
	return def, nil
}

// outValue is what a salt[...] function hands back to the template:
// ordered data stays ordered (the engine copies it in).
func outValue(v any) any { return v }

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

// lookup reads one key of a mapping, ordered or not.
func lookup(data any, key string) (any, bool) {
	switch x := data.(type) {
	case *omap:
		return x.get(key)
	case map[string]any:
		v, ok := x[key]
		return v, ok
	}
	return nil, false
}

// traverse walks a delimited path as Salt's traverse_dict_and_list does:
// part by part through mappings, lists by
// (possibly negative) index, and a name on a list looks inside the
// list's mappings.
func traverse(data any, key, delim string) (any, bool) {
	if data == nil {
		return nil, false
	}
	cur := data
	for _, part := range strings.Split(key, delim) {
		if l, ok := cur.([]any); ok {
			if i, err := strconv.Atoi(part); err == nil {
				if i < 0 {
					i += len(l)
				}
				if i < 0 || i >= len(l) {
					return nil, false
				}
				cur = l[i]
				continue
			}
			found := false
			for _, item := range l {
				if v, ok := lookup(item, part); ok {
					cur, found = v, true
					break
				}
			}
			if !found {
				return nil, false
			}
			continue
		}
		v, ok := lookup(cur, part)
		if !ok {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

func items(data any, keys []any) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if s, ok := k.(string); ok {
			if v, ok := traverse(data, s, ":"); ok {
				out[s] = outValue(v)
			}
		}
	}
	return out
}

// filterBy is Salt's grains.filter_by(lookup_dict, grain='os_family',
// merge=None, default='default', base=None): the entry whose key matches
// the grain's value (a glob; for a list grain, each item in turn), else
// the default entry; base merged under it, merge over it.
func (rc *renderCtx) filterBy(args []any, kwargs map[string]any) (any, error) {
	params := []string{"lookup_dict", "grain", "merge", "default", "base"}
	if len(args) > len(params) {
		return nil, fmt.Errorf("grains.filter_by takes at most %d arguments, got %d", len(params), len(args))
	}
	got := map[string]any{"grain": "os_family", "default": "default"}
	for i, a := range args {
		got[params[i]] = a
	}
	for k, v := range kwargs {
		if !slices.Contains(params, k) {
			return nil, fmt.Errorf("grains.filter_by: unexpected argument %s", k)
		}
		got[k] = v
	}
	table, ok := got["lookup_dict"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("grains.filter_by: lookup_dict must be a dict, got %v", typeName(got["lookup_dict"]))
	}
	grain, _ := got["grain"].(string)
	dflt, _ := got["default"].(string)
	val, _ := traverse(rc.minion.Grains, grain, ":")
	candidates := asList(val)
	// Salt tries the keys in the dict's order; the engine hands dicts
	// over unordered, so exact keys are tried first, then patterns sorted.
	keys := sortedKeys(table)
	var ret any
	found := false
	for _, c := range candidates {
		cs := keyString(c)
		if v, ok := table[cs]; ok {
			ret, found = v, true
			break
		}
		for _, k := range keys {
			if ok, _ := path.Match(k, cs); ok {
				ret, found = table[k], true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		ret = table[dflt]
	}
	if base, _ := got["base"].(string); base != "" {
		if bv, ok := table[base]; ok {
			if ret == nil {
				ret = bv
			} else if bm, ok := bv.(map[string]any); ok {
				rm, ok := ret.(map[string]any)
				if !ok {
					return nil, errors.New("grains.filter_by: the default and looked-up values must both be dicts")
				}
				ret = dictUpdate(deepCopyPlain(bm).(map[string]any), rm)
			}
		}
	}
	if merge := got["merge"]; merge != nil {
		mm, ok := merge.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("grains.filter_by: merge must be a dict, got %s", typeName(merge))
		}
		if ret == nil {
			return mm, nil
		}
		rm, ok := ret.(map[string]any)
		if !ok {
			return nil, errors.New("grains.filter_by: the looked-up value must be a dict to merge into")
		}
		ret = dictUpdate(deepCopyPlain(rm).(map[string]any), deepCopyPlain(mm).(map[string]any))
	}
	return ret, nil
}

// dictUpdate is salt.utils.dictupdate.update: nested dicts merge, any
// other value of src replaces dst's.
func dictUpdate(dst, src map[string]any) map[string]any {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = dictUpdate(dm, sm)
				continue
			}
		}
		dst[k] = sv
	}
	return dst
}

func deepCopyPlain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = deepCopyPlain(item)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = deepCopyPlain(item)
		}
		return out
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// includeError is a failure in a file reached through include:, with the
// chain of files that led to it (innermost first).
type includeError struct {
	err  error
	from string
}

func (e *includeError) Error() string { return e.err.Error() + "\n    included from " + e.from }
func (e *includeError) Unwrap() error { return e.err }

func includedFrom(err error, from string) error {
	if from == "" {
		return err
	}
	return &includeError{err: err, from: from}
}
