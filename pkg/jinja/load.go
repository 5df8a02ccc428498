package jinja

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/parser"
	"github.com/brine-cm/brine/internal/gonja/tokens"
	"github.com/brine-cm/brine/pkg/state/render/saltyaml"
	"gopkg.in/yaml.v3"
)

// loadYAML reads YAML as Salt's loader does (saltyaml's scalars: 0644 as
// written, yes/no booleans, timestamps as strings) into the template
// model, keeping mapping order as Python's dicts do.
func loadYAML(src string) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	budget := saltyaml.MaxNodes
	return yamlNode(doc.Content[0], 0, &budget)
}

func yamlNode(n *yaml.Node, depth int, budget *int) (any, error) {
	*budget--
	if *budget < 0 {
		return nil, fmt.Errorf("line %d: document expands to more than %d values", n.Line, saltyaml.MaxNodes)
	}
	if depth > saltyaml.MaxDepth {
		return nil, fmt.Errorf("line %d: nesting too deep", n.Line)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlNode(n.Content[0], depth+1, budget)
	case yaml.AliasNode:
		return yamlNode(n.Alias, depth+1, budget)
	case yaml.ScalarNode:
		v, err := saltyaml.Scalar(n)
		if err != nil {
			return nil, fmt.Errorf("line %d column %d: %w", n.Line, n.Column, err)
		}
		return v, nil
	case yaml.SequenceNode:
		l := make(List, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlNode(c, depth+1, budget)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return &l, nil
	case yaml.MappingNode:
		d := &exec.Dict{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				mv, err := yamlNode(v, depth+1, budget)
				if err != nil {
					return nil, err
				}
				sources := []any{mv}
				if l, ok := mv.(*List); ok {
					sources = *l
				}
				for _, src := range sources {
					for _, p := range dictPairs(exec.AsValue(src)) {
						if _, exists := dictGet(exec.AsValue(d), p.Key); !exists {
							d.Pairs = append(d.Pairs, &exec.Pair{Key: p.Key, Value: p.Value})
						}
					}
				}
				continue
			}
			key, err := yamlNode(k, depth+1, budget)
			if err != nil {
				return nil, err
			}
			val, err := yamlNode(v, depth+1, budget)
			if err != nil {
				return nil, err
			}
			if err := dictSet(exec.AsValue(d), exec.AsValue(key), val); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// loadJSON is Python's json.loads into the template model, keys in order.
func loadJSON(src string) (any, error) {
	d := json.NewDecoder(bytes.NewReader([]byte(src)))
	d.UseNumber()
	v, err := jsonValue(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("extra data after the JSON value")
	}
	return v, nil
}

func jsonValue(d *json.Decoder, depth int) (any, error) {
	if depth > saltyaml.MaxDepth {
		return nil, errors.New("nesting too deep")
	}
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '{':
			m := &exec.Dict{}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := jsonValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				if err := dictSet(exec.AsValue(m), exec.AsValue(k), v); err != nil {
					return nil, err
				}
			}
			_, err := d.Token()
			return m, err
		case '[':
			l := List{}
			for d.More() {
				v, err := jsonValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := d.Token()
			return &l, err
		}
		return nil, fmt.Errorf("unexpected %v", x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i), nil
		}
		return x.Float64()
	}
	return tok, nil
}

func loadYAMLFilter(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	v, err := loadYAML(in.String())
	if err != nil {
		return exec.AsValue(fmt.Errorf("load_yaml: %w", err))
	}
	return exec.AsValue(v)
}

func loadJSONFilter(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	v, err := loadJSON(in.String())
	if err != nil {
		return exec.AsValue(fmt.Errorf("load_json: %w", err))
	}
	return exec.AsValue(v)
}

// loadBlock is Salt's {% load_yaml as x %}...{% endload %} (and
// load_json, load_text): the rendered body, parsed, bound to x.
type loadBlock struct {
	location *tokens.Token
	kind     string
	name     string
	body     *nodes.Wrapper
}

func (s *loadBlock) Position() *tokens.Token { return s.location }
func (s *loadBlock) String() string {
	return fmt.Sprintf("Load%sControlStructure(Line=%d Col=%d)", s.kind, s.location.Line, s.location.Col)
}

func parseLoadBlock(kind string) parser.ControlStructureParser {
	return func(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
		s := &loadBlock{location: args.Current(), kind: kind}
		if args.MatchName("as") == nil {
			return nil, args.Error(`expected "as"`, args.Current())
		}
		name := args.Match(tokens.Name)
		if name == nil {
			return nil, args.Error("expected a name after as", args.Current())
		}
		s.name = name.Val
		if !args.End() {
			return nil, args.Error("unexpected tokens after load_"+kind, args.Current())
		}
		wrapper, endargs, err := p.WrapUntil("endload")
		if err != nil {
			return nil, err
		}
		if !endargs.End() {
			return nil, endargs.Error("endload takes no arguments", nil)
		}
		s.body = wrapper
		return s, nil
	}
}

func (s *loadBlock) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	var buf bytes.Buffer
	sub := r.Inherit()
	sub.Output = &buf
	if err := sub.ExecuteWrapper(s.body); err != nil {
		return err
	}
	var v any
	var err error
	switch s.kind {
	case "yaml":
		v, err = loadYAML(buf.String())
	case "json":
		v, err = loadJSON(buf.String())
	default:
		v = buf.String()
	}
	if err != nil {
		return fmt.Errorf("load_%s %s: %w", s.kind, s.name, err)
	}
	r.Environment.Context.Set(s.name, v)
	return nil
}
