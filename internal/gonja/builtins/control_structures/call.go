package controlStructures

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/parser"
	"github.com/brine-cm/brine/internal/gonja/tokens"
	"github.com/pkg/errors"
)

// CallControlStructure implements Jinja2's
//
//	{% call macro_name(args...) %} body {% endcall %}
//
// The body is exposed inside the macro as the `caller()` function.
type CallControlStructure struct {
	Location *tokens.Token
	Call     *nodes.Call    // the macro invocation
	Body     *nodes.Wrapper // body to expose as caller()
	Params   []string       // {% call(a, b) m() %}: caller's parameters
}

func (c *CallControlStructure) Position() *tokens.Token { return c.Location }
func (c *CallControlStructure) String() string {
	t := c.Position()
	return fmt.Sprintf("CallControlStructure(Line=%d Col=%d)", t.Line, t.Col)
}

func (c *CallControlStructure) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	// Build the caller() closure: renders the {% call %}...{% endcall %} body.
	callerFn := func(va *exec.VarArgs) *exec.Value {
		buf := new(bytes.Buffer)
		sub := r.Inherit()
		for i, name := range c.Params {
			if i < len(va.Args) {
				sub.Environment.Context.Set(name, va.Args[i])
			} else if v, ok := va.KwArgs[name]; ok {
				sub.Environment.Context.Set(name, v)
			} else {
				return exec.AsValue(fmt.Errorf("caller() is missing argument %q", name))
			}
		}
		originalOutput := sub.Output
		sub.Output = buf
		err := sub.ExecuteWrapper(c.Body)
		sub.Output = originalOutput
		if err != nil {
			return exec.AsValue(err)
		}
		return exec.AsSafeValue(buf.String())
	}

	// As in Jinja2, the body reaches the macro as its caller keyword.
	call := *c.Call
	call.Kwargs = maps.Clone(c.Call.Kwargs)
	call.Kwargs["caller"] = &callerNode{fn: callerFn, loc: c.Location}
	call.KwOrder = append(slices.Clone(c.Call.KwOrder), "caller")
	result := r.Eval(&call)
	if result.IsError() {
		return errors.Wrapf(result, "Unable to execute {%% call %%}")
	}

	if _, err := r.Output.Write([]byte(result.String())); err != nil {
		return err
	}
	return nil
}

func callParser(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	cs := &CallControlStructure{Location: p.Current()}

	if args.Match(tokens.LeftParenthesis) != nil {
		for args.Match(tokens.RightParenthesis) == nil {
			name := args.Match(tokens.Name)
			if name == nil {
				return nil, args.Error("Expected a parameter name in call(...)", args.Current())
			}
			cs.Params = append(cs.Params, name.Val)
			if args.Match(tokens.Comma) == nil && args.Current(tokens.RightParenthesis) == nil {
				return nil, args.Error("Expected , or ) in call(...)", args.Current())
			}
		}
	}

	// Parse the macro-call expression: name(arg1, arg2, key=val, ...).
	expr, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	call, ok := expr.(*nodes.Call)
	if !ok {
		return nil, args.Error("Expected a macro call expression after {% call %}", args.Current())
	}
	cs.Call = call

	if !args.End() {
		return nil, args.Error("Malformed call-tag arguments.", args.Current())
	}

	// Parse body until {% endcall %}.
	wrapper, endargs, err := p.WrapUntil("endcall")
	if err != nil {
		return nil, err
	}
	cs.Body = wrapper
	if !endargs.End() {
		return nil, endargs.Error("endcall takes no arguments", nil)
	}

	return cs, nil
}

// callerNode is an expression that evaluates to the caller() function.
type callerNode struct {
	fn  func(*exec.VarArgs) *exec.Value
	loc *tokens.Token
}

func (n *callerNode) Position() *tokens.Token { return n.loc }
func (n *callerNode) String() string          { return "caller" }
func (n *callerNode) Value() *exec.Value      { return exec.AsValue(n.fn) }
