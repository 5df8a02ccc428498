package render

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/brine-cm/brine/pkg/state/render/saltyaml"
)

// omap is a YAML mapping that remembers key order and where each key was
// written: state IDs run in definition order, and errors point at lines.
type omap struct {
	keys []string
	vals map[string]any
	pos  map[string]pos
	// where each item of a sequence value was written, for errors about
	// one item (an include entry)
	itemPos map[string][]pos
}

// itemLine is the line of item i of the sequence under key k, else the
// key's own line.
func (m *omap) itemLine(k string, i int) int {
	if ps := m.itemPos[k]; i < len(ps) {
		return ps[i].line
	}
	return m.pos[k].line
}

type pos struct{ line, col int }

func newOmap() *omap { return &omap{vals: map[string]any{}, pos: map[string]pos{}} }

func (m *omap) get(k string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m.vals[k]
	return v, ok
}

func (m *omap) set(k string, v any, p pos) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
	m.pos[k] = p
}

// Keys and Get let a template engine walk a mapping in the order the YAML
// wrote it (Salt's loader yields ordered dicts, and formulas rely on it).
func (m *omap) Keys() []string { return m.keys }

// Get returns the value of key k.
func (m *omap) Get(k string) (any, bool) { return m.get(k) }

// Len is the number of keys.
func (m *omap) Len() int { return len(m.keys) }

// ordered turns plain Go data into omaps, keys sorted (a Go map has no
// order to keep): command-line pillar overrides, grains.
func ordered(v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m := newOmap()
		for _, k := range keys {
			m.set(k, ordered(x[k]), pos{})
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = ordered(item)
		}
		return out
	}
	return v
}

// mergeOmap merges b into a as Salt's pillar merge does: mappings
// recursively, anything else replaced. A key already in a keeps its place,
// new keys follow in b's order, as a Python dict update would.
func mergeOmap(a, b *omap) *omap {
	if a == nil {
		a = newOmap()
	}
	if b == nil {
		return a
	}
	for _, k := range b.keys {
		bv := b.vals[k]
		if bm, ok := bv.(*omap); ok {
			if am, ok := a.vals[k].(*omap); ok {
				a.vals[k] = mergeOmap(am, bm)
				continue
			}
		}
		a.set(k, bv, b.pos[k])
	}
	return a
}

func (m *omap) del(k string) {
	if _, ok := m.vals[k]; !ok {
		return
	}
	delete(m.vals, k)
	delete(m.pos, k)
	for i, key := range m.keys {
		if key == k {
			m.keys = append(m.keys[:i:i], m.keys[i+1:]...)
			break
		}
	}
}

// yamlError is a YAML failure in rendered SLS text.
type yamlError struct {
	file      string
	line, col int
	msg       string
	src       string
}

func (e *yamlError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", e.file)
	if e.line > 0 {
		fmt.Fprintf(&b, "rendered YAML line %d", e.line)
		if e.col > 0 {
			fmt.Fprintf(&b, " column %d", e.col)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.msg)
	writeSource(&b, e.line, e.col, e.src)
	return b.String()
}

// writeSource quotes the offending line and, when the column is known,
// puts a caret under it.
func writeSource(b *strings.Builder, line, col int, src string) {
	if src == "" {
		return
	}
	prefix := fmt.Sprintf("    %d | ", line)
	b.WriteString("\n" + prefix + src)
	if col <= 0 {
		return
	}
	b.WriteString("\n" + strings.Repeat(" ", len(prefix)))
	for i, r := range []rune(src) {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteByte('^')
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML decodes rendered SLS text: mappings become *omap, sequences
// []any, scalars Go values with Salt's (YAML 1.1) booleans.
func parseYAML(file string, text []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		ye := &yamlError{file: file, msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			ye.line, _ = strconv.Atoi(m[1])
			ye.msg = m[2]
		}
		// yaml.v3 reports where the enclosing block started, not where it
		// broke; the first prefix of the text that fails to parse ends at
		// the offending line.
		if bad := firstFailingLine(text); bad > ye.line {
			ye.msg = fmt.Sprintf("%s (in the block starting at line %d)", ye.msg, ye.line)
			ye.line = bad
		}
		ye.src = lineOf(text, ye.line)
		return nil, ye
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	budget := maxYAMLNodes
	return decodeNode(file, text, doc.Content[0], 0, &budget)
}

func firstFailingLine(text []byte) int {
	lines := strings.SplitAfter(string(text), "\n")
	if len(lines) > 5000 {
		return 0
	}
	fails := func(n int) bool {
		var v yaml.Node
		return yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &v) != nil
	}
	lo, hi := 1, len(lines)
	if !fails(hi) {
		return 0
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

func lineOf(text []byte, line int) string {
	if line <= 0 {
		return ""
	}
	lines := strings.Split(string(text), "\n")
	if line > len(lines) {
		return ""
	}
	return strings.TrimRight(lines[line-1], "\r")
}

const (
	maxYAMLDepth = 200
	maxYAMLNodes = 1 << 18
)

func decodeNode(file string, text []byte, n *yaml.Node, depth int, budget *int) (any, error) {
	// Aliases can make a small document expand exponentially.
	*budget--
	if *budget < 0 {
		return nil, &yamlError{file: file, line: n.Line, col: n.Column, msg: fmt.Sprintf("document expands to more than %d values (alias bomb?)", maxYAMLNodes), src: lineOf(text, n.Line)}
	}
	if depth > maxYAMLDepth {
		return nil, &yamlError{file: file, line: n.Line, col: n.Column, msg: "nesting too deep", src: lineOf(text, n.Line)}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return decodeNode(file, text, n.Content[0], depth+1, budget)
	case yaml.AliasNode:
		return decodeNode(file, text, n.Alias, depth+1, budget)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := decodeNode(file, text, c, depth+1, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		m := newOmap()
		// Keys that came from a << merge may be overridden by the
		// mapping's own keys; only a key written twice is a conflict.
		var merged map[string]bool
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				mv, err := decodeNode(file, text, v, depth+1, budget)
				if err != nil {
					return nil, err
				}
				var sources []any
				switch x := mv.(type) {
				case *omap:
					sources = []any{x}
				case []any:
					sources = x
				default:
					sources = []any{x}
				}
				for _, src := range sources {
					mm, ok := src.(*omap)
					if !ok {
						return nil, &yamlError{file: file, line: v.Line, col: v.Column, msg: "a << merge takes a mapping or a list of mappings", src: lineOf(text, v.Line)}
					}
					for _, key := range mm.keys {
						if _, exists := m.vals[key]; !exists {
							m.set(key, mm.vals[key], mm.pos[key])
							if merged == nil {
								merged = map[string]bool{}
							}
							merged[key] = true
						}
					}
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &yamlError{file: file, line: k.Line, col: k.Column, msg: "mapping keys must be scalars", src: lineOf(text, k.Line)}
			}
			key, err := scalar(k)
			if err != nil {
				return nil, &yamlError{file: file, line: k.Line, col: k.Column, msg: err.Error(), src: lineOf(text, k.Line)}
			}
			ks := keyString(key)
			if _, dup := m.vals[ks]; dup && !merged[ks] {
				// Salt's loader refuses every repeated key with this wording;
				// a silent overwrite would drop a whole state.
				return nil, &yamlError{file: file, line: k.Line, col: k.Column,
					msg: fmt.Sprintf("conflicting ID '%s' (first defined at line %d)", ks, m.pos[ks].line), src: lineOf(text, k.Line)}
			}
			val, err := decodeNode(file, text, v, depth+1, budget)
			if err != nil {
				return nil, err
			}
			delete(merged, ks)
			m.set(ks, val, pos{k.Line, k.Column})
			if v.Kind == yaml.SequenceNode && depth == 0 {
				ps := make([]pos, len(v.Content))
				for j, item := range v.Content {
					ps[j] = pos{item.Line, item.Column}
				}
				if m.itemPos == nil {
					m.itemPos = map[string][]pos{}
				}
				m.itemPos[ks] = ps
			}
		}
		return m, nil
	case yaml.ScalarNode:
		v, err := scalar(n)
		if err != nil {
			return nil, &yamlError{file: file, line: n.Line, col: n.Column, msg: err.Error(), src: lineOf(text, n.Line)}
		}
		return v, nil
	}
	return nil, &yamlError{file: file, line: n.Line, col: n.Column, msg: "unsupported YAML node", src: lineOf(text, n.Line)}
}

func scalar(n *yaml.Node) (any, error) { return saltyaml.Scalar(n) }

func keyString(k any) string { return saltyaml.KeyString(k) }

// plain converts decoded YAML into plain Go data (ordered maps lose their
// order), for pillar, args and the JSON that leaves the master.
func plain(v any) any {
	switch x := v.(type) {
	case *omap:
		out := make(map[string]any, len(x.keys))
		for _, k := range x.keys {
			out[k] = plain(x.vals[k])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = plain(item)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = plain(item)
		}
		return out
	}
	return v
}
