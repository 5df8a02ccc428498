package parser

import (
	log "github.com/sirupsen/logrus"

	"github.com/brine-cm/brine/internal/gonja/logging"
	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/tokens"
)

func (p *Parser) ParseTest(expr nodes.Expression) (nodes.Expression, error) {
	if logging.Enabled() {
		log.WithFields(log.Fields{
			"current": p.Current(),
		}).Trace("parseTest")
	}

	expr, err := p.ParseFilterExpression(expr)
	if err != nil {
		return nil, err
	}
	if p.Current(
		tokens.GreaterThan,
		tokens.GreaterThanOrEqual,
		tokens.LowerThan,
		tokens.LowerThanOrEqual,
		tokens.Not,
		tokens.In,
		tokens.Is,
	) != nil {
		_ = p.Match(tokens.Is) // ignore the is keyword entirely if present

		not := p.Match(tokens.Not)
		ident := p.Next()

		test := &nodes.TestCall{
			Token:  ident,
			Name:   ident.Val,
			Args:   []nodes.Expression{},
			Kwargs: map[string]nodes.Expression{},
		}
		if p.Match(tokens.LeftParenthesis) != nil {
			// is test(arg, ..., kw=value)
			for p.Match(tokens.RightParenthesis) == nil {
				if name := p.Current(tokens.Name); name != nil && p.Peek(tokens.Assign) != nil {
					p.Consume()
					p.Consume()
					v, err := p.ParseExpression()
					if err != nil {
						return nil, err
					}
					test.Kwargs[name.Val] = v
				} else {
					v, err := p.ParseExpression()
					if err != nil {
						return nil, err
					}
					test.Args = append(test.Args, v)
				}
				if p.Match(tokens.Comma) == nil && p.Current(tokens.RightParenthesis) == nil {
					return nil, p.Error("Expected , or ) in test arguments", p.Current())
				}
			}
		} else if p.CurrentName("else") == nil {
			// avoid trying to parse "else" as test arguments
			arg, err := p.ParseVariableOrLiteral()
			if err == nil && arg != nil {
				test.Args = append(test.Args, arg)
			}
		}
		expr = &nodes.TestExpression{
			Expression: expr,
			Test:       test,
		}

		if not != nil {
			expr = &nodes.Negation{
				Term:     expr,
				Operator: not,
			}
		}
	}

	if logging.Enabled() {
		log.WithFields(log.Fields{
			"expr": expr,
		}).Trace("parseTest return")
	}
	return expr, nil
}
