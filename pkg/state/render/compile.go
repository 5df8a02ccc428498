package render

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/brine-cm/brine/pkg/jinja"
	"github.com/brine-cm/brine/pkg/state"
)

// Highstate renders and compiles everything the top file assigns to the
// minion.
func (t *Tree) Highstate(ctx context.Context, m Minion, opts Options) ([]state.Chunk, error) {
	pillar, err := t.pillar(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	top, order, err := t.top(ctx, t.FileRoots, m, opts, pillar)
	if err != nil {
		return nil, err
	}
	c := t.newCompiler(ctx, m, opts, pillar)
	for _, env := range order {
		for _, sls := range top[env] {
			if err := c.load(env, sls); err != nil {
				return nil, err
			}
		}
	}
	return c.compile()
}

// SLS renders and compiles the named SLS modules (state.apply mods) in
// opts.Saltenv (base by default).
func (t *Tree) SLS(ctx context.Context, m Minion, mods []string, opts Options) ([]state.Chunk, error) {
	pillar, err := t.pillar(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	env := opts.Saltenv
	if env == "" {
		env = "base"
	}
	c := t.newCompiler(ctx, m, opts, pillar)
	for _, sls := range mods {
		if err := c.load(env, sls); err != nil {
			return nil, err
		}
	}
	return c.compile()
}

type compiler struct {
	tree    *Tree
	ctx     context.Context
	minion  Minion
	opts    Options
	pillar  *omap
	loaded  map[string]bool
	ids     []string
	decls   map[string]*decl
	extends []*decl
	iorder  int
}

// decl is one state ID as written in an SLS file.
type decl struct {
	id, sls, env, file string
	pos                pos
	body               *omap          // "file.managed" or "file" -> argument list
	iorder             map[string]int // per state declaration, Salt's auto order
}

func (d *decl) where() string {
	if d.pos.line > 0 {
		return fmt.Sprintf("%s:%d", d.file, d.pos.line)
	}
	return d.file
}

func (t *Tree) newCompiler(ctx context.Context, m Minion, opts Options, pillar *omap) *compiler {
	return &compiler{tree: t, ctx: ctx, minion: m, opts: opts, pillar: pillar, loaded: map[string]bool{}, decls: map[string]*decl{}}
}

func (c *compiler) rc(env string) *renderCtx {
	return &renderCtx{ctx: c.ctx, tree: c.tree, minion: c.minion, opts: c.opts, pillar: c.pillar, saltenv: env, roots: c.tree.FileRoots}
}

// load renders one SLS and, first, what it includes: Salt gives included
// states the lower auto order, so they run first unless told otherwise.
func (c *compiler) load(env, sls string) error {
	key := env + ":" + sls
	if c.loaded[key] {
		return nil
	}
	c.loaded[key] = true
	src, file, err := slsFile(c.tree.FileRoots, env, sls)
	if err != nil {
		return err
	}
	rc := c.rc(env)
	data, err := renderSource(file, src, rc.vars(sls, file), rc.jinjaOptions(file, slsRel(sls, file), c.tree.Jinja.SLS))
	if err != nil {
		return err
	}
	if data == nil {
		return nil
	}
	high, ok := data.(*omap)
	if !ok {
		return fmt.Errorf("%s: an SLS file must render to a mapping of state IDs, got %s", file, typeName(data))
	}
	if inc, ok := high.get("include"); ok {
		list, ok := inc.([]any)
		if !ok {
			return fmt.Errorf("%s:%d: include must be a list of SLS names", file, high.pos["include"].line)
		}
		for i, item := range list {
			line := high.itemLine("include", i)
			name, ok := item.(string)
			if !ok {
				if m, isMap := item.(*omap); isMap && len(m.keys) == 1 {
					name = m.keys[0]
				} else {
					return fmt.Errorf("%s:%d: include entry %v is not an SLS name", file, line, item)
				}
			}
			full, err := resolveRelative(sls, file, name)
			if err != nil {
				return fmt.Errorf("%s:%d: %w", file, line, err)
			}
			if err := c.load(env, full); err != nil {
				return includedFrom(err, fmt.Sprintf("%s:%d (SLS %s)", file, line, sls))
			}
		}
	}
	for _, id := range high.keys {
		p := high.pos[id]
		switch id {
		case "include":
			continue
		case "exclude":
			return fmt.Errorf("%s:%d: exclude is not supported by brine", file, p.line)
		case "extend":
			ext, ok := high.vals[id].(*omap)
			if !ok {
				return fmt.Errorf("%s:%d: extend must map state IDs to state declarations", file, p.line)
			}
			for _, eid := range ext.keys {
				body, err := declBody(file, eid, ext.pos[eid], ext.vals[eid])
				if err != nil {
					return err
				}
				c.extends = append(c.extends, &decl{id: eid, sls: sls, env: env, file: file, pos: ext.pos[eid], body: body})
			}
			continue
		}
		if strings.HasPrefix(id, "__") {
			return fmt.Errorf("%s:%d: state ID %q: IDs starting with __ are reserved", file, p.line, id)
		}
		body, err := declBody(file, id, p, high.vals[id])
		if err != nil {
			return err
		}
		if prev, dup := c.decls[id]; dup {
			return fmt.Errorf("conflicting ID %q: defined in %s (SLS %s:%s) and in %s (SLS %s:%s); state IDs must be unique",
				id, prev.where(), prev.env, prev.sls, fmt.Sprintf("%s:%d", file, p.line), env, sls)
		}
		d := &decl{id: id, sls: sls, env: env, file: file, pos: p, body: body, iorder: map[string]int{}}
		for _, mod := range body.keys {
			d.iorder[mod] = c.iorder
			c.iorder++
		}
		c.ids = append(c.ids, id)
		c.decls[id] = d
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case *omap:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

// declBody validates an ID's value: a mapping of state declarations, each
// a list of arguments. `id: pkg.installed` is accepted as shorthand.
func declBody(file, id string, p pos, v any) (*omap, error) {
	if s, ok := v.(string); ok && strings.Contains(s, ".") {
		m := newOmap()
		m.set(s, []any{}, p)
		return m, nil
	}
	body, ok := v.(*omap)
	if !ok {
		return nil, fmt.Errorf("%s:%d: state ID %q must map state modules to argument lists, got %s", file, p.line, id, typeName(v))
	}
	for _, mod := range body.keys {
		if strings.HasPrefix(mod, "__") {
			continue
		}
		mp := body.pos[mod]
		switch args := body.vals[mod].(type) {
		case nil:
			body.vals[mod] = []any{}
		case []any:
			for _, a := range args {
				switch x := a.(type) {
				case string:
				case *omap:
					if len(x.keys) != 1 {
						return nil, fmt.Errorf("%s:%d: ID %q, %s: each argument must be a single key: value pair, got %d keys (%s) — check the indentation",
							file, mp.line, id, mod, len(x.keys), strings.Join(x.keys, ", "))
					}
				default:
					return nil, fmt.Errorf("%s:%d: ID %q, %s: argument %v is not a key: value pair", file, mp.line, id, mod, a)
				}
			}
		default:
			return nil, fmt.Errorf("%s:%d: ID %q, %s: arguments must be a list (- name: value), got %s", file, mp.line, id, mod, typeName(args))
		}
	}
	return body, nil
}

// requisite kinds and whether they are the _in form.
var requisiteKinds = map[string]string{
	"require": state.Require, "watch": state.Watch, "onchanges": state.OnChanges, "onfail": state.OnFail, "prereq": state.Prereq,
}

var unsupportedArgs = map[string]bool{
	"use": true, "use_in": true, "listen": true, "listen_in": true,
	"require_any": true, "watch_any": true, "onchanges_any": true, "onfail_any": true, "onfail_all": true,
}

type reqRef struct {
	kind   string // state.Require...
	in     bool   // written as X_in
	target any    // *omap {file: foo} or string
}

type lowChunk struct {
	state.Chunk
	decl      *decl
	orderKey  float64
	reqs      []reqRef
	resolved  []state.Requisite
	placement []int // indexes this chunk must come after
}

func (c *compiler) compile() ([]state.Chunk, error) {
	if err := c.applyExtends(); err != nil {
		return nil, err
	}
	var chunks []*lowChunk
	for _, id := range c.ids {
		d := c.decls[id]
		for _, mod := range d.body.keys {
			if strings.HasPrefix(mod, "__") {
				continue
			}
			cs, err := c.lowChunks(d, mod)
			if err != nil {
				return nil, err
			}
			chunks = append(chunks, cs...)
		}
	}
	orderChunks(chunks)
	if err := resolveRequisites(chunks); err != nil {
		return nil, err
	}
	sorted, err := placeChunks(chunks)
	if err != nil {
		return nil, err
	}
	out := make([]state.Chunk, len(sorted))
	for i, lc := range sorted {
		if err := c.resolveSource(lc); err != nil {
			return nil, err
		}
		lc.Order = i
		out[i] = lc.Chunk
	}
	return out, nil
}

// applyExtends merges extend: blocks into the declarations they name, as
// Salt does: requisites are appended, other arguments replaced.
func (c *compiler) applyExtends() error {
	for _, ext := range c.extends {
		d, ok := c.decls[ext.id]
		if !ok {
			return fmt.Errorf("%s: extend names state ID %q, which no rendered SLS defines", ext.where(), ext.id)
		}
		for _, emod := range ext.body.keys {
			eargs, _ := ext.body.vals[emod].([]any)
			target := ""
			for _, mod := range d.body.keys {
				if mod == emod || strings.SplitN(mod, ".", 2)[0] == strings.SplitN(emod, ".", 2)[0] {
					target = mod
					break
				}
			}
			if target == "" {
				d.body.set(emod, slices.Clone(eargs), ext.pos)
				d.iorder[emod] = c.iorder
				c.iorder++
				continue
			}
			args, _ := d.body.vals[target].([]any)
			for _, ea := range eargs {
				em, ok := ea.(*omap)
				if !ok {
					if !slices.Contains(args, ea) {
						args = append(args, ea)
					}
					continue
				}
				k := em.keys[0]
				idx := -1
				for i, a := range args {
					if am, ok := a.(*omap); ok && am.keys[0] == k {
						idx = i
						break
					}
				}
				base := strings.TrimSuffix(k, "_in")
				if _, isReq := requisiteKinds[base]; isReq && idx >= 0 {
					old := asList(args[idx].(*omap).vals[k])
					merged := newOmap()
					merged.set(k, append(slices.Clone(old), asList(em.vals[k])...), em.pos[k])
					args[idx] = merged
				} else if idx >= 0 {
					args[idx] = em
				} else {
					args = append(args, em)
				}
			}
			d.body.vals[target] = args
		}
	}
	return nil
}

func asList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	}
	return []any{v}
}

// lowChunks compiles one state declaration into chunks (one per names
// entry), as Salt's compile_high_data does.
func (c *compiler) lowChunks(d *decl, mod string) ([]*lowChunk, error) {
	where := fmt.Sprintf("%s: ID %q, %s", d.where(), d.id, mod)
	stateName, fun, _ := strings.Cut(mod, ".")
	if stateName == "" {
		return nil, fmt.Errorf("%s: empty state module name", where)
	}
	args := newOmap()
	var names []any
	var reqs []reqRef
	var order any
	failhard := false
	name := d.id
	for _, a := range d.body.vals[mod].([]any) {
		switch x := a.(type) {
		case string:
			if fun != "" && fun != x {
				return nil, fmt.Errorf("%s: more than one function (%s and %s); use a separate ID", where, fun, x)
			}
			fun = x
		case *omap:
			k := x.keys[0]
			v := x.vals[k]
			switch {
			case k == "name":
				if s, ok := scalarString(v); ok {
					name = s
				}
			case k == "names":
				list, ok := v.([]any)
				if !ok {
					return nil, fmt.Errorf("%s: names must be a list", where)
				}
				names = append(names, list...)
			case k == "order":
				order = v
			case k == "failhard":
				b, ok := v.(bool)
				if !ok {
					return nil, fmt.Errorf("%s: failhard must be True or False", where)
				}
				failhard = b
			case k == "fun" || k == "state":
			case unsupportedArgs[k]:
				return nil, fmt.Errorf("%s: the %s requisite is not supported by brine", where, k)
			default:
				base, in := strings.CutSuffix(k, "_in")
				if kind, ok := requisiteKinds[base]; ok {
					for _, target := range asList(v) {
						reqs = append(reqs, reqRef{kind: kind, in: in, target: target})
					}
					continue
				}
				args.set(k, v, x.pos[k])
			}
		}
	}
	if fun == "" {
		return nil, fmt.Errorf("%s: no function given (write %s.<function> or add - <function> to the list)", where, stateName)
	}
	baseOrder, err := explicitOrder(where, order)
	if err != nil {
		return nil, err
	}
	mk := func(n string, extra *omap, nameOrder int) *lowChunk {
		a := plain(args).(map[string]any)
		if extra != nil {
			for _, k := range extra.keys {
				a[k] = plain(extra.vals[k])
			}
		}
		if len(a) == 0 {
			a = nil
		}
		lc := &lowChunk{
			Chunk: state.Chunk{ID: d.id, SLS: d.sls, Env: d.env, State: stateName, Fun: fun, Name: n, Args: a, Failhard: failhard},
			decl:  d,
			reqs:  reqs,
		}
		lc.orderKey = baseOrder.value(d.iorder[mod]) + float64(nameOrder)/10000
		return lc
	}
	if len(names) == 0 {
		return []*lowChunk{mk(name, nil, 0)}, nil
	}
	var out []*lowChunk
	seen := map[string]bool{}
	for i, entry := range names {
		var n string
		var extra *omap
		switch x := entry.(type) {
		case *omap:
			if len(x.keys) != 1 {
				return nil, fmt.Errorf("%s: a names entry that is a mapping must have one key (the name)", where)
			}
			n = x.keys[0]
			extra = newOmap()
			for _, item := range asList(x.vals[n]) {
				if m, ok := item.(*omap); ok && len(m.keys) == 1 {
					extra.set(m.keys[0], m.vals[m.keys[0]], m.pos[m.keys[0]])
				} else if item != nil {
					return nil, fmt.Errorf("%s: names entry %q: arguments must be a list of key: value pairs", where, n)
				}
			}
		default:
			s, ok := scalarString(entry)
			if !ok {
				return nil, fmt.Errorf("%s: names entry %v is not a name", where, entry)
			}
			n = s
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, mk(n, extra, i+1))
	}
	return out, nil
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int, float64, bool:
		return fmt.Sprint(x), true
	}
	return "", false
}

// stateOrder is a declaration's place: an explicit order, first, last, or
// Salt's auto order (definition order).
type stateOrder struct {
	kind string // "auto", "num", "first", "last"
	num  float64
}

func explicitOrder(where string, v any) (stateOrder, error) {
	switch x := v.(type) {
	case nil:
		return stateOrder{kind: "auto"}, nil
	case int:
		return stateOrder{kind: "num", num: float64(x)}, nil
	case float64:
		return stateOrder{kind: "num", num: x}, nil
	case string:
		switch x {
		case "first":
			return stateOrder{kind: "first"}, nil
		case "last":
			return stateOrder{kind: "last"}, nil
		}
	}
	return stateOrder{}, fmt.Errorf("%s: order must be a number, first or last, got %v", where, v)
}

// Auto order sits after explicit numbers below autoBase, as with Salt's
// cap; last comes after everything, first before everything.
const autoBase = 1 << 20

func (o stateOrder) value(iorder int) float64 {
	switch o.kind {
	case "first":
		return -1
	case "num":
		if o.num < 0 {
			return math.MaxInt32 + o.num
		}
		return o.num
	case "last":
		return math.MaxInt32
	}
	return autoBase + float64(iorder)
}

func orderChunks(chunks []*lowChunk) {
	sort.SliceStable(chunks, func(i, j int) bool {
		a, b := chunks[i], chunks[j]
		if a.orderKey != b.orderKey {
			return a.orderKey < b.orderKey
		}
		return a.State+a.Name+a.Fun < b.State+b.Name+b.Fun
	})
}

// resolveRequisites turns every requisite into edges between chunk Keys,
// moving _in forms onto the chunks they name.
func resolveRequisites(chunks []*lowChunk) error {
	index := map[*lowChunk]int{}
	for i, lc := range chunks {
		index[lc] = i
	}
	add := func(from *lowChunk, kind string, to *lowChunk) {
		r := state.Requisite{Kind: kind, Key: to.Key()}
		if !slices.Contains(from.resolved, r) && from != to {
			from.resolved = append(from.resolved, r)
		}
	}
	for _, lc := range chunks {
		for _, r := range lc.reqs {
			targets, desc, err := matchRequisite(chunks, r.target)
			if err != nil {
				return fmt.Errorf("%s: ID %q (SLS %s): %s%s: %w", lc.decl.where(), lc.ID, lc.SLS, r.kind, inSuffix(r.in), err)
			}
			if len(targets) == 0 {
				return fmt.Errorf("%s: ID %q (SLS %s): requisite %s%s %s matches no state in this run", lc.decl.where(), lc.ID, lc.SLS, r.kind, inSuffix(r.in), desc)
			}
			for _, t := range targets {
				if r.in {
					add(t, r.kind, lc)
				} else {
					add(lc, r.kind, t)
				}
			}
		}
	}
	byKey := map[string]int{}
	for i, lc := range chunks {
		byKey[lc.Key()] = i
	}
	for i, lc := range chunks {
		lc.Requisites = lc.resolved
		for _, r := range lc.resolved {
			j := byKey[r.Key]
			if r.Kind == state.Prereq {
				// The prereq'ing chunk runs (in test mode first) before its target.
				chunks[j].placement = append(chunks[j].placement, i)
			} else {
				lc.placement = append(lc.placement, j)
			}
		}
	}
	return nil
}

func inSuffix(in bool) string {
	if in {
		return "_in"
	}
	return ""
}

// matchRequisite finds the chunks a requisite names: {state: id-or-name},
// {sls: name}, or a bare ID.
func matchRequisite(chunks []*lowChunk, target any) ([]*lowChunk, string, error) {
	var out []*lowChunk
	switch x := target.(type) {
	case string:
		for _, lc := range chunks {
			if lc.ID == x {
				out = append(out, lc)
			}
		}
		return out, fmt.Sprintf("%q", x), nil
	case *omap:
		if len(x.keys) != 1 {
			return nil, "", fmt.Errorf("a requisite must be written - <state>: <id or name>")
		}
		mod := x.keys[0]
		ref, ok := scalarString(x.vals[mod])
		if !ok {
			return nil, "", fmt.Errorf("requisite %s: target must be a string", mod)
		}
		desc := fmt.Sprintf("%s: %s", mod, ref)
		for _, lc := range chunks {
			switch {
			case mod == "sls":
				if lc.SLS == ref {
					out = append(out, lc)
				}
			case mod == "id":
				if lc.ID == ref {
					out = append(out, lc)
				}
			case lc.State == mod && (lc.ID == ref || lc.Name == ref):
				out = append(out, lc)
			}
		}
		return out, desc, nil
	}
	return nil, "", fmt.Errorf("requisite target %v must be - <state>: <id or name> or an ID", target)
}

// placeChunks orders chunks by their order key but never before what they
// depend on: a depth-first walk in order that places dependencies first,
// which is how Salt's runtime reaches requisites.
func placeChunks(chunks []*lowChunk) ([]*lowChunk, error) {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(chunks))
	out := make([]*lowChunk, 0, len(chunks))
	var stack []int
	var visit func(i int) error
	visit = func(i int) error {
		switch color[i] {
		case black:
			return nil
		case grey:
			start := slices.Index(stack, i)
			var ids []string
			for _, j := range stack[start:] {
				ids = append(ids, fmt.Sprintf("%s (%s.%s in %s)", chunks[j].ID, chunks[j].State, chunks[j].Fun, chunks[j].decl.where()))
			}
			ids = append(ids, chunks[i].ID)
			return fmt.Errorf("requisite cycle: %s", strings.Join(ids, " -> "))
		}
		color[i] = grey
		stack = append(stack, i)
		deps := slices.Clone(chunks[i].placement)
		slices.Sort(deps)
		for _, j := range slices.Compact(deps) {
			if err := visit(j); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		out = append(out, chunks[i])
		return nil
	}
	for i := range chunks {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// resolveSource inlines file.managed's salt:// source so the minion needs
// no file server: contents replaces source (rendered when template: jinja).
func (c *compiler) resolveSource(lc *lowChunk) error {
	if lc.State != "file" || lc.Fun != "managed" || lc.Args == nil {
		return nil
	}
	src, ok := lc.Args["source"]
	if !ok {
		return nil
	}
	var sources []string
	for _, s := range asList(src) {
		switch x := s.(type) {
		case string:
			sources = append(sources, x)
		case map[string]any:
			for k := range x {
				sources = append(sources, k)
			}
		default:
			return fmt.Errorf("%s: ID %q: source %v is not a salt:// URL", lc.decl.where(), lc.ID, s)
		}
	}
	var content []byte
	var file, used string
	var lastErr error
	for _, s := range sources {
		b, p, err := c.tree.ReadFile(lc.Env, s)
		if err == nil {
			content, file, used = b, p, s
			break
		}
		lastErr = err
	}
	if file == "" {
		return fmt.Errorf("%s: ID %q (file.managed %s): source %s cannot be read: %w", lc.decl.where(), lc.ID, lc.Name, strings.Join(sources, ", "), lastErr)
	}
	text := string(content)
	if tmpl, _ := lc.Args["template"].(string); tmpl != "" {
		if tmpl != "jinja" {
			return fmt.Errorf("%s: ID %q: template %q is not supported (only jinja)", lc.decl.where(), lc.ID, tmpl)
		}
		rc := c.rc(lc.Env)
		rel, _, _ := parseSaltURL(used)
		vars := rc.templateVars(lc.SLS, rel, file)
		vars["source"] = used
		vars["sfn"] = file
		for _, key := range []string{"defaults", "context"} {
			if m, ok := lc.Args[key].(map[string]any); ok {
				for k, v := range m {
					vars[k] = v
				}
			} else if lc.Args[key] != nil {
				return fmt.Errorf("%s: ID %q: %s must be a mapping", lc.decl.where(), lc.ID, key)
			}
		}
		out, err := jinja.RenderOptions(file, text, vars, rc.jinjaOptions(file, rel, c.tree.Jinja.Files))
		if err != nil {
			return fmt.Errorf("ID %q (file.managed %s): %w", lc.ID, lc.Name, err)
		}
		text = out
	}
	for _, k := range []string{"source", "source_hash", "template", "context", "defaults", "skip_verify"} {
		delete(lc.Args, k)
	}
	lc.Args["contents"] = text
	return nil
}
