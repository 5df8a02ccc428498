package reactor

import (
	"context"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/brine-cm/brine/pkg/pyrender"
)

// renderPy runs a #!py reactor file and reads its reactions exactly as
// the Jinja+YAML path reads rendered YAML, so both accept the same forms.
func (r *Reactor) renderPy(file string, src []byte, tag string, data map[string]any) ([]reaction, error) {
	prog, err := r.py.Compile(file, src)
	if err != nil {
		return nil, err
	}
	opts := *r.opts.Load()
	// A worker's own context is not threaded through render; the limits
	// bound the run, and a master shutting down waits at most Timeout.
	out, err := prog.Run(context.Background(), pyrender.Globals{
		Reactor: true, Tag: tag, Data: data, Opts: opts,
		Salt: r.saltFuncs(), Saltenv: "base", Log: r.log,
	}, r.cfg.PyLimits)
	if err != nil {
		return nil, err
	}
	return parseReactionNodes(file, pyNode(out))
}

// pyNode turns run()'s result into the YAML node tree a Jinja reactor's
// output would decode to (without line numbers).
func pyNode(v any) *yaml.Node {
	switch x := v.(type) {
	case *pyrender.Dict:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range x.Keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, pyNode(x.Vals[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range x {
			n.Content = append(n.Content, pyNode(e))
		}
		return n
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(x)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(x)}
	case float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(x, 'g', -1, 64)}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v)}
}
