package reactor

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// reaction is one compiled entry of a reactor SLS, in file order.
type reaction struct {
	ID     string
	Line   int
	Client string // local, runner
	Fun    string // state.apply, event.send...

	// local
	Tgt, TgtType string
	Args         []any
	Kwargs       map[string]any

	// runner event.send / event.fire
	EventTag  string
	EventData map[string]any
}

// Salt's target types (tgt_type / the older expr_form).
var tgtTypes = map[string]bool{
	"glob": true, "pcre": true, "list": true, "grain": true, "grain_pcre": true,
	"pillar": true, "pillar_pcre": true, "pillar_exact": true, "nodegroup": true,
	"range": true, "compound": true, "ipcidr": true,
}

// parseReactions reads rendered reactor YAML. An empty document is no
// reactions (a template whose `if` was false). Errors name file, reaction
// and line.
func parseReactions(file string, text []byte) ([]reaction, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, fmt.Errorf("%s: rendered YAML: %w", file, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	return parseReactionNodes(file, doc.Content[0])
}

// loc is file:line, or the file alone when the line is unknown (data a
// #!py run() returned).
func loc(file string, line int) string {
	if line <= 0 {
		return file
	}
	return fmt.Sprintf("%s:%d", file, line)
}

// parseReactionNodes reads reactions from a decoded document, whichever
// renderer produced it.
func parseReactionNodes(file string, top *yaml.Node) ([]reaction, error) {
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping of reaction ids, got %s", loc(file, top.Line), kindName(top))
	}
	var out []reaction
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		id := k.Value
		if seen[id] {
			return nil, fmt.Errorf("%s: reaction %q defined twice", loc(file, k.Line), id)
		}
		seen[id] = true
		r, err := parseReaction(id, v)
		if err != nil {
			return nil, fmt.Errorf("%s: reaction %q: %w", loc(file, errLine(err, k.Line)), id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

type lineErr struct {
	line int
	err  error
}

func (e *lineErr) Error() string { return e.err.Error() }
func (e *lineErr) Unwrap() error { return e.err }

func atLine(n *yaml.Node, format string, a ...any) error {
	return &lineErr{line: n.Line, err: fmt.Errorf(format, a...)}
}

func errLine(err error, def int) int {
	var le *lineErr
	if errors.As(err, &le) && le.line > 0 {
		return le.line
	}
	return def
}

func parseReaction(id string, v *yaml.Node) (reaction, error) {
	r := reaction{ID: id, Line: v.Line}
	if v.Kind != yaml.MappingNode || len(v.Content) != 2 {
		return r, atLine(v, "want exactly one function such as local.state.apply, got %s", kindName(v))
	}
	fk, fv := v.Content[0], v.Content[1]
	client, fun, ok := strings.Cut(fk.Value, ".")
	if !ok || fun == "" {
		return r, atLine(fk, "%q is not <client>.<function> (e.g. local.state.apply)", fk.Value)
	}
	r.Client, r.Fun = client, fun
	opts, err := optionList(fv)
	if err != nil {
		return r, err
	}
	switch client {
	case "local":
		return r, r.parseLocal(opts)
	case "runner":
		return r, r.parseRunner(opts)
	case "wheel", "caller":
		return r, atLine(fk, "%s reactions are not supported by brine (only local.* and runner.event.send)", client)
	}
	return r, atLine(fk, "unknown client %q (want local or runner)", client)
}

type option struct {
	key  string
	val  any
	node *yaml.Node
}

// optionList reads Salt's state-style argument list: a sequence of
// single-key mappings, `- tgt: web*`.
func optionList(n *yaml.Node) ([]option, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, atLine(n, "want a list of options (- tgt: ...), got %s", kindName(n))
	}
	var out []option
	seen := map[string]bool{}
	for _, it := range n.Content {
		if it.Kind != yaml.MappingNode || len(it.Content) != 2 {
			return nil, atLine(it, "each option must be a single `key: value`, got %s", kindName(it))
		}
		key := it.Content[0].Value
		if seen[key] {
			return nil, atLine(it, "option %q given twice", key)
		}
		seen[key] = true
		var val any
		if err := it.Content[1].Decode(&val); err != nil {
			return nil, atLine(it, "option %q: %v", key, err)
		}
		out = append(out, option{key: key, val: plain(val), node: it})
	}
	return out, nil
}

func (r *reaction) parseLocal(opts []option) error {
	r.TgtType = "glob"
	r.Kwargs = map[string]any{}
	var haveTgt bool
	for _, o := range opts {
		switch o.key {
		case "tgt":
			switch t := o.val.(type) {
			case string:
				r.Tgt = t
			case []any:
				// A list target, as Salt accepts for tgt_type: list.
				parts := make([]string, len(t))
				for i, x := range t {
					s, ok := scalarString(x)
					if !ok {
						return atLine(o.node, "tgt: list items must be minion ids, got %s", typeName(x))
					}
					parts[i] = s
				}
				r.Tgt = strings.Join(parts, ",")
			default:
				s, ok := scalarString(o.val)
				if !ok {
					return atLine(o.node, "tgt: want a string, got %s", typeName(o.val))
				}
				r.Tgt = s
			}
			haveTgt = r.Tgt != ""
		case "tgt_type", "expr_form":
			s, _ := o.val.(string)
			if !tgtTypes[s] {
				return atLine(o.node, "%s: unknown target type %v (want one of %s)", o.key, o.val, strings.Join(sortedKeys(tgtTypes), ", "))
			}
			r.TgtType = s
		case "arg":
			l, ok := o.val.([]any)
			if !ok {
				l = []any{o.val}
			}
			r.Args = append(r.Args, l...)
		case "kwarg":
			m, ok := o.val.(map[string]any)
			if !ok {
				return atLine(o.node, "kwarg: want a mapping, got %s", typeName(o.val))
			}
			if err := mergeKwargs(r.Kwargs, m, o.node); err != nil {
				return err
			}
		case "args":
			if err := r.addNewStyleArgs(o); err != nil {
				return err
			}
		default:
			return atLine(o.node, "unknown option %q for local.%s (want tgt, tgt_type, expr_form, arg, args, kwarg)", o.key, r.Fun)
		}
	}
	if !haveTgt {
		return fmt.Errorf("local.%s needs a non-empty tgt", r.Fun)
	}
	return nil
}

// addNewStyleArgs reads Salt's newer `args:` list, where mapping items
// are keyword arguments (`- mods: web.deploy`) and anything else is
// positional.
func (r *reaction) addNewStyleArgs(o option) error {
	l, ok := o.val.([]any)
	if !ok {
		if m, isMap := o.val.(map[string]any); isMap {
			return mergeKwargs(r.Kwargs, m, o.node)
		}
		return atLine(o.node, "args: want a list, got %s", typeName(o.val))
	}
	for _, it := range l {
		if m, ok := it.(map[string]any); ok {
			if err := mergeKwargs(r.Kwargs, m, o.node); err != nil {
				return err
			}
			continue
		}
		r.Args = append(r.Args, it)
	}
	return nil
}

func mergeKwargs(dst, src map[string]any, n *yaml.Node) error {
	for k, v := range src {
		if _, dup := dst[k]; dup {
			return atLine(n, "keyword argument %q given twice", k)
		}
		dst[k] = v
	}
	return nil
}

func (r *reaction) parseRunner(opts []option) error {
	if r.Fun != "event.send" && r.Fun != "event.fire" {
		return fmt.Errorf("runner.%s is not supported in reactions (only runner.event.send and runner.event.fire)", r.Fun)
	}
	kw := map[string]any{}
	var pos []any
	for _, o := range opts {
		switch o.key {
		case "tag", "data":
			if err := mergeKwargs(kw, map[string]any{o.key: o.val}, o.node); err != nil {
				return err
			}
		case "arg":
			l, ok := o.val.([]any)
			if !ok {
				l = []any{o.val}
			}
			pos = append(pos, l...)
		case "kwarg", "args":
			tmp := reaction{Kwargs: kw}
			if err := tmp.addNewStyleArgs(o); err != nil {
				return err
			}
			pos = append(pos, tmp.Args...)
		default:
			return atLine(o.node, "unknown option %q for runner.%s (want tag, data, arg, args, kwarg)", o.key, r.Fun)
		}
	}
	// event.send(tag, data=None): positional arguments fill what is unset.
	for i, p := range pos {
		name := [...]string{"tag", "data"}[min(i, 1)]
		if i > 1 {
			return fmt.Errorf("runner.%s takes at most tag and data", r.Fun)
		}
		if _, set := kw[name]; set {
			return fmt.Errorf("runner.%s: %s given twice", r.Fun, name)
		}
		kw[name] = p
	}
	tag, ok := kw["tag"].(string)
	if !ok || tag == "" {
		return fmt.Errorf("runner.%s needs a tag", r.Fun)
	}
	r.EventTag = tag
	switch d := kw["data"].(type) {
	case nil:
		r.EventData = map[string]any{}
	case map[string]any:
		r.EventData = d
	default:
		return fmt.Errorf("runner.%s: data must be a mapping, got %s", r.Fun, typeName(d))
	}
	return nil
}

func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case int, int64, float64, bool:
		return fmt.Sprint(t), true
	}
	return "", false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// plain turns YAML's map[any]any (non-string keys) into map[string]any so
// every value can travel as JSON in a job.
func plain(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = plain(x)
		}
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = plain(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = plain(x)
		}
	}
	return v
}

// joinSurrogates rewrites JSON's surrogate-pair escapes (`\ud83d\ude80`,
// which |tojson emits for characters outside the BMP, like emoji in a
// commit message) into YAML's `\U0001F680`: yaml.v3 refuses surrogate
// escapes, so without this one emoji in hook data fails the reaction.
// Only escapes yaml.v3 would reject are touched: a backslash that is
// itself escaped (`\\ud83d`) is left alone.
func joinSurrogates(s string) string {
	if !strings.Contains(s, `\ud`) && !strings.Contains(s, `\uD`) {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i+12 <= len(s); i++ {
		if s[i] != '\\' || s[i+1] != 'u' {
			continue
		}
		n := 0 // backslashes ending at i
		for j := i; j >= 0 && s[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 || s[i+6] != '\\' || s[i+7] != 'u' {
			continue
		}
		hi, ok1 := hex4(s[i+2 : i+6])
		lo, ok2 := hex4(s[i+8 : i+12])
		if !ok1 || !ok2 || hi < 0xd800 || hi > 0xdbff || lo < 0xdc00 || lo > 0xdfff {
			continue
		}
		r := 0x10000 + (hi-0xd800)<<10 + (lo - 0xdc00)
		b.WriteString(s[last:i])
		fmt.Fprintf(&b, `\U%08X`, r)
		last = i + 12
		i += 11
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func hex4(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
