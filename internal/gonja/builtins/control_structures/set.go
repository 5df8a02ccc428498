package controlStructures

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/parser"
	"github.com/brine-cm/brine/internal/gonja/tokens"
	"github.com/pkg/errors"
)

type SetControlStructure struct {
	location    *tokens.Token
	target      nodes.Expression
	expression  nodes.Expression
	condition   nodes.Expression
	alternative nodes.Expression
	body        *nodes.Wrapper
	unpack      []string         // {% set a, b = ... %}
	blockValue  *blockValue      // the captured body, fed to blockFilter
	blockFilter nodes.Expression // {% set x | filter %}
}

// blockValue is the placeholder a block-set's filters apply to.
type blockValue struct {
	loc *tokens.Token
	val *exec.Value
}

func (b *blockValue) Position() *tokens.Token { return b.loc }
func (b *blockValue) String() string          { return "block" }
func (b *blockValue) Value() *exec.Value      { return b.val }

func (scs *SetControlStructure) Position() *tokens.Token {
	return scs.location
}
func (scs *SetControlStructure) String() string {
	t := scs.Position()
	return fmt.Sprintf("SetControlStructure(Line=%d Col=%d)", t.Line, t.Col)
}

func (scs *SetControlStructure) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	var value *exec.Value

	// --- Block form: {% set x %}...{% endset %} ---
	if scs.body != nil {
		buf := new(bytes.Buffer)
		sub := r.Inherit()
		originalOutput := sub.Output
		sub.Output = buf
		err := sub.ExecuteWrapper(scs.body)
		sub.Output = originalOutput
		if err != nil {
			return err
		}
		// Jinja2's block-set captures the rendered string as a Markup
		// (safe) value. Match that semantic.
		value = exec.AsSafeValue(buf.String())
		if scs.blockFilter != nil {
			scs.blockValue.val = value
			value = r.Eval(scs.blockFilter)
		}
	} else {
		// --- Expression form: {% set x = expr [if cond else alt] %} ---
		if scs.condition != nil && scs.alternative != nil {
			condition := r.Eval(scs.condition)
			if condition.IsError() {
				return condition
			}
			if !condition.IsNil() && condition.IsTrue() {
				value = r.Eval(scs.expression)
			} else {
				value = r.Eval(scs.alternative)
			}
		} else {
			value = r.Eval(scs.expression)
		}
	}

	if value == nil {
		return errors.Errorf(`Invalid value in 'set' tag: %s`, scs.expression)
	}
	if value.IsError() {
		// Jinja2 stores an undefined value and fails only where it is
		// used; the stored error does the same here.
		if n, ok := scs.target.(*nodes.Name); ok && len(scs.unpack) == 0 && isUndefinedError(value) {
			r.Environment.Context.Set(n.Name.Val, value.Interface())
			return nil
		}
		return value
	}

	if len(scs.unpack) > 0 {
		var items []*exec.Value
		value.Iterate(func(_, _ int, key, _ *exec.Value) bool {
			items = append(items, key)
			return true
		}, func() {})
		if len(items) != len(scs.unpack) {
			return errors.Errorf("cannot unpack %d values into %d names", len(items), len(scs.unpack))
		}
		for i, name := range scs.unpack {
			r.Environment.Context.Set(name, items[i].Interface())
		}
		return nil
	}

	switch n := scs.target.(type) {
	case *nodes.Name:
		r.Environment.Context.Set(n.Name.Val, value.Interface())
	case *nodes.GetAttribute:
		target := r.Eval(n.Node)
		if target.IsError() {
			return errors.Wrapf(target, `Unable to evaluate target %s`, n)
		}
		if err := target.Set(exec.AsValue(n.Attribute), value.Interface()); err != nil {
			return errors.Wrapf(err, `Unable to set value on "%s"`, n.Attribute)
		}
	case *nodes.GetItem:
		target := r.Eval(n.Node)
		if target.IsError() {
			return errors.Wrapf(target, `Unable to evaluate target %s`, n)
		}
		arg := r.Eval(n.Arg)
		if arg.IsError() {
			return errors.Wrapf(target, `Unable to evaluate argument %s`, n.Arg)
		}
		if err := target.Set(arg, value.Interface()); err != nil {
			return errors.Wrapf(err, `Unable to set value on "%s"`, n.Arg)
		}
	default:
		return errors.Errorf(`Illegal set target node %s`, n)
	}

	return nil
}

func setParser(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	cs := &SetControlStructure{
		location: p.Current(),
	}

	// Parse target (variable name / attr / item).
	ident, err := args.ParseVariableOrLiteral()
	if err != nil {
		return nil, errors.Wrap(err, `unable to parse identifier`)
	}
	switch n := ident.(type) {
	case *nodes.Name, *nodes.Call, *nodes.GetItem, *nodes.GetAttribute:
		cs.target = n
	default:
		return nil, errors.Errorf(`unexpected set target %s`, n)
	}

	for args.Match(tokens.Comma) != nil {
		// {% set a, b = ... %}
		name := args.Match(tokens.Name)
		if name == nil {
			return nil, args.Error("Expected a name to unpack into", args.Current())
		}
		if len(cs.unpack) == 0 {
			first, ok := cs.target.(*nodes.Name)
			if !ok {
				return nil, args.Error("Only names can be unpacked into", args.Current())
			}
			cs.unpack = append(cs.unpack, first.Name.Val)
		}
		cs.unpack = append(cs.unpack, name.Val)
	}

	if args.Match(tokens.Assign) == nil {
		if len(cs.unpack) > 0 {
			return nil, args.Error("Expected '=' after the names to unpack into", args.Current())
		}
		if args.Current(tokens.Pipe) != nil {
			// {% set x | filter %}...{% endset %}
			cs.blockValue = &blockValue{loc: args.Current()}
			filtered, err := args.ParseFilterExpression(cs.blockValue)
			if err != nil {
				return nil, err
			}
			cs.blockFilter = filtered
		}
		if !args.End() {
			return nil, args.Error("Expected '=' or end of tag for block-set.", args.Current())
		}
		wrapper, endargs, err := p.WrapUntil("endset")
		if err != nil {
			return nil, err
		}
		if !endargs.End() {
			return nil, endargs.Error("endset takes no arguments", nil)
		}
		cs.body = wrapper
		return cs, nil
	}

	// --- Expression form: {% set x = expr [if cond else alt] %} ---
	expr, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	if comma := args.Current(tokens.Comma); comma != nil {
		// A bare tuple: {% set a, b = 1, 2 %}
		tuple := &nodes.Tuple{Location: comma, Val: []nodes.Expression{expr}}
		for args.Match(tokens.Comma) != nil {
			if args.End() {
				break
			}
			item, err := args.ParseExpression()
			if err != nil {
				return nil, err
			}
			tuple.Val = append(tuple.Val, item)
		}
		expr = tuple
	}
	cs.expression = expr

	condition, alternative, err := args.ParseCondition()
	if err != nil {
		return nil, err
	}
	if condition != nil {
		cs.condition = condition
		if alternative == nil {
			return nil, args.Error("Malformed 'set' if else condition", args.Current())
		}
		cs.alternative = alternative
	}

	if !args.End() {
		return nil, args.Error("Malformed 'set' tag args.", args.Current())
	}

	return cs, nil
}

// isUndefinedError tells a missing name, attribute or item apart from a
// real failure (a function's error), which set must report at once.
func isUndefinedError(v *exec.Value) bool {
	msg := v.Error()
	if strings.Contains(strings.ToLower(msg), "unable to evaluate target") {
		// nope.x: Jinja2 fails at once on an attribute of an undefined.
		return false
	}
	for _, s := range []string{"Unable to evaluate name", "not found", "argument is undefined"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
