package output

import (
	"sort"
	"strings"
)

// Nested renders v like Salt's nested outputter, starting at the given
// indent. Mappings are sorted by key (OrderedMap keeps its order), nested
// mappings open with a "----------" line, lists use "- " and "|_". The
// result has no trailing newline; an empty value renders as "".
func Nested(v any, indent int, o Options) string {
	n := nest{c: colors(o.Color), retcode: o.Retcode}
	n.display(v, indent, "")
	return strings.Join(n.out, "\n")
}

type nest struct {
	c       palette
	retcode int
	out     []string
}

func (n *nest) line(indent int, color, prefix, msg, suffix string) {
	n.out = append(n.out, strings.Repeat(" ", indent)+color+prefix+msg+n.c.Endc+suffix)
}

func (n *nest) containerColor(ok string) string {
	if n.retcode != 0 {
		return n.c.Red
	}
	return ok
}

func (n *nest) display(v any, indent int, prefix string) {
	v = normalize(v)
	if s, ok := scalarText(v); ok {
		n.line(indent, n.c.LightYellow, prefix, s, "")
		return
	}
	switch x := v.(type) {
	case string:
		pad := strings.Repeat(" ", len(prefix))
		for i, l := range splitLines(Sanitize(x)) {
			p := prefix
			if i > 0 {
				p = pad
			}
			n.line(indent, n.c.Green, p, l, "")
		}
	case []any:
		color := n.containerColor(n.c.Green)
		for _, item := range x {
			item = normalize(item)
			switch item.(type) {
			case []any:
				n.line(indent, color, "", "|_", "")
				n.display(item, indent+2, "- ")
			case map[string]any, OrderedMap:
				n.line(indent, color, "", "|_", "")
				n.display(item, indent+2, "")
			default:
				n.display(item, indent, "- ")
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		om := make(OrderedMap, len(keys))
		for i, k := range keys {
			om[i] = KV{k, x[k]}
		}
		n.mapping(om, indent, prefix)
	case OrderedMap:
		n.mapping(x, indent, prefix)
	default:
		n.line(indent, n.c.Green, prefix, Sanitize(strings.TrimSpace(strings.ReplaceAll(stringify(x), "\n", " "))), "")
	}
}

func (n *nest) mapping(m OrderedMap, indent int, prefix string) {
	color := n.containerColor(n.c.Cyan)
	if indent > 0 {
		n.line(indent, color, "", "----------", "")
	}
	for _, kv := range m {
		n.line(indent, color, prefix, Sanitize(kv.Key), ":")
		n.display(kv.Value, indent+4, "")
	}
}
