package saltyaml

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Limits on what one document may expand to: aliases can make a small
// document exponentially large.
const (
	MaxDepth = 200
	MaxNodes = 1 << 18
)

// Error is a YAML failure with its position (1-based; 0 when unknown).
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d column %d: %s", e.Line, e.Column, e.Msg)
	}
	return e.Msg
}

// Unmarshal decodes a YAML document into plain Go data as Salt's loader
// would: mappings become map[string]any (keys through KeyString),
// sequences []any, scalars as Scalar reads them. A key written twice in
// one mapping is an error, "conflicting ID", as in Salt; keys brought in
// by a << merge may be overridden.
func Unmarshal(data []byte) (any, error) {
	return UnmarshalOrdered(data, nil)
}

// Mapping is an ordered mapping a caller wants YAML mappings built into
// (the template engine's ordered dict, say); Set appends new keys.
type Mapping interface {
	Set(k string, v any)
}

// UnmarshalOrdered is Unmarshal building each mapping with newMap, in the
// order the document writes its keys; nil newMap means map[string]any.
func UnmarshalOrdered(data []byte, newMap func() Mapping) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	d := &decoder{budget: MaxNodes}
	v, err := d.node(doc.Content[0], 0)
	if err != nil {
		return nil, err
	}
	return build(v, newMap), nil
}

// omap is the decoder's own ordered mapping, turned into the caller's
// type once the document is complete.
type omap struct {
	keys []string
	vals map[string]any
}

func (m *omap) set(k string, v any) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

func build(v any, newMap func() Mapping) any {
	switch x := v.(type) {
	case *omap:
		if newMap == nil {
			out := make(map[string]any, len(x.keys))
			for _, k := range x.keys {
				out[k] = build(x.vals[k], nil)
			}
			return out
		}
		out := newMap()
		for _, k := range x.keys {
			out.Set(k, build(x.vals[k], newMap))
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = build(item, newMap)
		}
		return out
	}
	return v
}

type decoder struct{ budget int }

func (d *decoder) node(n *yaml.Node, depth int) (any, error) {
	d.budget--
	if d.budget < 0 {
		return nil, &Error{n.Line, n.Column, fmt.Sprintf("document expands to more than %d values (alias bomb?)", MaxNodes)}
	}
	if depth > MaxDepth {
		return nil, &Error{n.Line, n.Column, "nesting too deep"}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return d.node(n.Content[0], depth+1)
	case yaml.AliasNode:
		return d.node(n.Alias, depth+1)
	case yaml.ScalarNode:
		v, err := Scalar(n)
		if err != nil {
			return nil, &Error{n.Line, n.Column, err.Error()}
		}
		return v, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := d.node(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := &omap{vals: map[string]any{}}
		line := map[string]int{}
		merged := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				mv, err := d.node(v, depth+1)
				if err != nil {
					return nil, err
				}
				sources, ok := mv.([]any)
				if !ok {
					sources = []any{mv}
				}
				for _, src := range sources {
					m, ok := src.(*omap)
					if !ok {
						return nil, &Error{v.Line, v.Column, "a << merge takes a mapping or a list of mappings"}
					}
					for _, key := range m.keys {
						if _, exists := out.vals[key]; !exists {
							out.set(key, m.vals[key])
							merged[key] = true
						}
					}
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &Error{k.Line, k.Column, "mapping keys must be scalars"}
			}
			key, err := Scalar(k)
			if err != nil {
				return nil, &Error{k.Line, k.Column, err.Error()}
			}
			ks := KeyString(key)
			if _, dup := out.vals[ks]; dup && !merged[ks] {
				return nil, &Error{k.Line, k.Column, fmt.Sprintf("conflicting ID '%s' (first defined at line %d)", ks, line[ks])}
			}
			val, err := d.node(v, depth+1)
			if err != nil {
				return nil, err
			}
			delete(merged, ks)
			out.set(ks, val)
			line[ks] = k.Line
		}
		return out, nil
	}
	return nil, &Error{n.Line, n.Column, "unsupported YAML node"}
}
