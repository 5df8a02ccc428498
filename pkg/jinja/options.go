package jinja

import (
	"path"
	"strings"
)

// Map is a mapping that keeps its keys in the order they were set, for
// data whose order the template must see (pillar and map.jinja defaults
// read from YAML, like Python dicts). Its zero value is not usable; use
// NewMap.
type Map struct {
	keys []string
	vals map[string]any
}

// NewMap returns an empty ordered mapping.
func NewMap() *Map { return &Map{vals: map[string]any{}} }

// Set adds k at the end, or replaces its value where it already is.
func (m *Map) Set(k string, v any) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// Get returns k's value.
func (m *Map) Get(k string) (any, bool) {
	v, ok := m.vals[k]
	return v, ok
}

// Keys lists the keys in order. The slice must not be modified.
func (m *Map) Keys() []string { return m.keys }

// Len is the number of keys.
func (m *Map) Len() int { return len(m.keys) }

// ordered is any mapping that knows its key order; *Map is one, and a
// caller's own ordered type can be passed in vars as well.
type ordered interface {
	Keys() []string
	Get(k string) (any, bool)
}

// Resolver finds the template named in {% import %}, {% from %},
// {% include %}, {% extends %} or import_yaml/json/text by the template
// `from`. It returns the template's canonical name (used in errors and as
// `from` for the templates it imports in turn) and its source.
type Resolver func(from, name string) (canonical, source string, err error)

// Options configure RenderOptions.
type Options struct {
	// Resolve loads imported and included templates; nil refuses them.
	Resolve Resolver
	// TrimBlocks and LstripBlocks are Jinja's trim_blocks and
	// lstrip_blocks (Salt's jinja_trim_blocks / jinja_lstrip_blocks), off
	// by default as in Salt.
	TrimBlocks   bool
	LstripBlocks bool
}

// RelativeName resolves name against the template `from` when it starts
// with "./" or "../", as Salt formulas write imports of their own
// map.jinja; any other name is returned unchanged. The result may still
// start with "../" when it leaves the root; callers must refuse that.
func RelativeName(from, name string) string {
	if !strings.HasPrefix(name, "./") && !strings.HasPrefix(name, "../") {
		return name
	}
	return path.Clean(path.Join(path.Dir(from), name))
}
