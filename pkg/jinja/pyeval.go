package jinja

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/tokens"
)

// pyHooks gives expressions Python's semantics where gonja's Go-flavoured
// evaluator differs: integer arithmetic stays integer, lists compare
// element-wise, mixing types is a TypeError, tuples stay tuples, dict
// literals keep one entry per key of any hashable type.
type pyHooks struct{}

func (pyHooks) Print(v *exec.Value) string { return pyStr(v) }

func (h pyHooks) Eval(e *exec.Evaluator, node nodes.Expression) (*exec.Value, bool) {
	switch n := node.(type) {
	case *nodes.BinaryExpression:
		switch n.Operator.Token.Type {
		case tokens.And, tokens.Or:
			return nil, false
		}
		left := e.Eval(n.Left)
		if left.IsError() {
			return left, true
		}
		right := e.Eval(n.Right)
		if right.IsError() {
			return right, true
		}
		v, err := binaryOp(n.Operator.Token.Type, n.Operator.Token.Val, modelOf(left), modelOf(right))
		if err != nil {
			return exec.AsValue(fmt.Errorf("line %d: %w", n.Operator.Token.Line, err)), true
		}
		if l, ok := v.(*List); ok && n.Operator.Token.Type == tokens.Multiply && constNode(n.Left) && constNode(n.Right) {
			// Jinja2 folds constant expressions at compile time and
			// rebuilds the result, so [[]] * 2 holds two distinct lists.
			for i, it := range *l {
				(*l)[i] = toModel(fromModel(it))
			}
		}
		return exec.AsValue(v), true
	case *nodes.Tuple:
		t := make(Tuple, 0, len(n.Val))
		for _, item := range n.Val {
			v := e.Eval(item)
			if v.IsError() {
				return v, true
			}
			t = append(t, modelOf(v))
		}
		return exec.AsValue(&t), true
	case *nodes.List:
		l := make(List, 0, len(n.Val))
		for _, item := range n.Val {
			v := e.Eval(item)
			if v.IsError() {
				return v, true
			}
			l = append(l, modelOf(v))
		}
		return exec.AsValue(&l), true
	case *nodes.Dict:
		d := &exec.Dict{}
		for _, p := range n.Pairs {
			k := e.Eval(p.Key)
			if k.IsError() {
				return k, true
			}
			v := e.Eval(p.Value)
			if v.IsError() {
				return v, true
			}
			if err := dictSet(exec.AsValue(d), exec.AsValue(modelOf(k)), modelOf(v)); err != nil {
				return exec.AsValue(err), true
			}
		}
		return exec.AsValue(d), true
	case *nodes.GetAttribute:
		// A method named without calling it (`l.append is callable`).
		if n.Attribute == "" || !methodNames[n.Attribute] {
			return nil, false
		}
		target := e.Eval(n.Node)
		if target.IsError() {
			return exec.AsValue(fmt.Errorf("Unable to evaluate target %s: %w", n.Node, target)), true
		}
		switch modelOf(target).(type) {
		case *exec.Dict, *List, string:
			return boundMethod(e, target, n.Attribute), true
		}
		return e.GetAttributeOf(target, n), true
	case *nodes.GetItem:
		// Non-string keys (ints, bools, tuples) of dicts; everything else
		// is gonja's.
		if n.Arg == nil {
			return nil, false
		}
		arg, ok := n.Arg.(nodes.Expression)
		if !ok {
			return nil, false
		}
		target := e.Eval(n.Node)
		if target.IsError() {
			return nil, false
		}
		d, ok := modelOf(target).(*exec.Dict)
		if !ok {
			return nil, false
		}
		key := e.Eval(arg)
		if key.IsError() {
			return key, true
		}
		if key.IsString() {
			return nil, false
		}
		for _, p := range d.Pairs {
			if pyEqual(modelOf(p.Key), modelOf(key)) {
				return p.Value, true
			}
		}
		return exec.AsValue(fmt.Errorf("unable to evaluate %s: item '%s' not found", n, pyRepr(key))), true
	}
	return nil, false
}

// modelOf is the plain model value inside a gonja value.
func modelOf(v *exec.Value) any {
	if v == nil || !v.Val.IsValid() {
		return nil
	}
	x := v.Interface()
	switch y := x.(type) {
	case *exec.Value:
		return modelOf(y)
	case exec.ValuesList:
		return toModel(y)
	case []any, map[string]any:
		return toModel(y)
	case List: // a slice of a list
		return &y
	case Tuple:
		return &y
	case int64:
		return int(y)
	case float32:
		return float64(y)
	}
	return x
}

var errType = errors.New("TypeError")

// errOverflow: Python's integers have no limit, brine's are 64-bit; a
// result that does not fit is refused rather than wrapped around.
var errOverflow = errors.New("OverflowError: integer result outside the 64-bit range brine supports (Python's integers are unbounded)")

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case *List:
		return "list"
	case *Tuple:
		return "tuple"
	case *exec.Dict, namespace:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// number reports v as Python sees a number (bools are ints).
func number(v any) (i int, f float64, isInt, ok bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, 1, true, true
		}
		return 0, 0, true, true
	case int:
		return x, float64(x), true, true
	case float64:
		return 0, x, false, true
	}
	return 0, 0, false, false
}

func binaryOp(typ tokens.Type, op string, l, r any) (any, error) {
	switch typ {
	case tokens.Equals:
		return pyEqual(l, r), nil
	case tokens.Ne:
		return !pyEqual(l, r), nil
	case tokens.LowerThan, tokens.LowerThanOrEqual, tokens.GreaterThan, tokens.GreaterThanOrEqual:
		c, err := pyCompare(l, r)
		if err != nil {
			return nil, fmt.Errorf("'%s' not supported between instances of '%s' and '%s'", op, typeName(l), typeName(r))
		}
		switch typ {
		case tokens.LowerThan:
			return c < 0, nil
		case tokens.LowerThanOrEqual:
			return c <= 0, nil
		case tokens.GreaterThan:
			return c > 0, nil
		}
		return c >= 0, nil
	case tokens.In:
		return pyContains(r, l)
	case tokens.Tilde:
		return pyStr(exec.AsValue(l)) + pyStr(exec.AsValue(r)), nil
	case tokens.Modulo:
		if s, ok := l.(string); ok {
			return pyPercent(s, r)
		}
	}
	li, lf, lInt, lNum := number(l)
	ri, rf, rInt, rNum := number(r)
	if lNum && rNum {
		bothInt := lInt && rInt
		switch typ {
		case tokens.Addition:
			if bothInt {
				s := li + ri
				if (s > li) != (ri > 0) {
					return nil, errOverflow
				}
				return s, nil
			}
			return lf + rf, nil
		case tokens.Subtraction:
			if bothInt {
				s := li - ri
				if (s < li) != (ri > 0) {
					return nil, errOverflow
				}
				return s, nil
			}
			return lf - rf, nil
		case tokens.Multiply:
			if bothInt {
				p := li * ri
				if li != 0 && (p/li != ri || (li == -1 && ri == math.MinInt)) {
					return nil, errOverflow
				}
				return p, nil
			}
			return lf * rf, nil
		case tokens.Division:
			if rf == 0 {
				return nil, errors.New("ZeroDivisionError: division by zero")
			}
			return lf / rf, nil
		case tokens.FloorDivision:
			if rf == 0 {
				return nil, errors.New("ZeroDivisionError: integer division or modulo by zero")
			}
			if bothInt {
				q := li / ri
				if (li%ri != 0) && ((li < 0) != (ri < 0)) {
					q--
				}
				return q, nil
			}
			return math.Floor(lf / rf), nil
		case tokens.Modulo:
			if rf == 0 {
				return nil, errors.New("ZeroDivisionError: integer division or modulo by zero")
			}
			if bothInt {
				m := li % ri
				if m != 0 && (m < 0) != (ri < 0) {
					m += ri
				}
				return m, nil
			}
			m := math.Mod(lf, rf)
			if m != 0 && (m < 0) != (rf < 0) {
				m += rf
			}
			return m, nil
		case tokens.Power:
			if bothInt && ri >= 0 {
				out := 1
				for range ri {
					next := out * li
					if li != 0 && next/li != out {
						return nil, errOverflow
					}
					out = next
				}
				return out, nil
			}
			return math.Pow(lf, rf), nil
		}
	}
	switch typ {
	case tokens.Addition:
		switch x := l.(type) {
		case string:
			if y, ok := r.(string); ok {
				return x + y, nil
			}
		case *List:
			if y, ok := r.(*List); ok {
				out := make(List, 0, len(*x)+len(*y))
				out = append(append(out, *x...), *y...)
				return &out, nil
			}
		case *Tuple:
			if y, ok := r.(*Tuple); ok {
				out := make(Tuple, 0, len(*x)+len(*y))
				out = append(append(out, *x...), *y...)
				return &out, nil
			}
		}
	case tokens.Multiply:
		seq, n := l, r
		if _, ok := l.(int); ok {
			seq, n = r, l
		}
		count, ok := n.(int)
		if ok {
			count = max(count, 0)
			switch x := seq.(type) {
			case string:
				return strings.Repeat(x, count), nil
			case *List:
				out := List{}
				for range count {
					out = append(out, *x...)
				}
				return &out, nil
			}
		}
	}
	return nil, pyErrorf("TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op, typeName(l), typeName(r))
}

// pyEqual is Python's ==.
func pyEqual(a, b any) bool {
	a, b = unwrapModel(a), unwrapModel(b)
	if ai, af, aInt, ok := number(a); ok {
		if bi, bf, bInt, ok := number(b); ok {
			if aInt && bInt {
				return ai == bi
			}
			return af == bf
		}
		return false
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case *List:
		y, ok := b.(*List)
		return ok && seqEqual(*x, *y)
	case *Tuple:
		y, ok := b.(*Tuple)
		return ok && seqEqual(*x, *y)
	case *exec.Dict:
		y, ok := b.(*exec.Dict)
		if !ok || len(x.Pairs) != len(y.Pairs) {
			return false
		}
		for _, p := range x.Pairs {
			v, found := dictGet(exec.AsValue(y), p.Key)
			if !found || !pyEqual(p.Value, v) {
				return false
			}
		}
		return true
	}
	return exec.AsValue(a).EqualValueTo(exec.AsValue(b))
}

func seqEqual(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !pyEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func unwrapModel(v any) any {
	if x, ok := v.(*exec.Value); ok {
		return modelOf(x)
	}
	return v
}

// pyCompare is Python's ordering; errType for unorderable types.
func pyCompare(a, b any) (int, error) {
	a, b = unwrapModel(a), unwrapModel(b)
	if _, af, _, ok := number(a); ok {
		if _, bf, _, ok := number(b); ok {
			switch {
			case af < bf:
				return -1, nil
			case af > bf:
				return 1, nil
			}
			return 0, nil
		}
		return 0, errType
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	case *List:
		if y, ok := b.(*List); ok {
			return seqCompare(*x, *y)
		}
	case *Tuple:
		if y, ok := b.(*Tuple); ok {
			return seqCompare(*x, *y)
		}
	}
	return 0, errType
}

func seqCompare(a, b []any) (int, error) {
	for i := 0; i < len(a) && i < len(b); i++ {
		if pyEqual(a[i], b[i]) {
			continue
		}
		return pyCompare(a[i], b[i])
	}
	switch {
	case len(a) < len(b):
		return -1, nil
	case len(a) > len(b):
		return 1, nil
	}
	return 0, nil
}

// pyContains is Python's `item in container`.
func pyContains(container, item any) (bool, error) {
	container, item = unwrapModel(container), unwrapModel(item)
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, pyErrorf("TypeError: 'in <string>' requires string as left operand, not %s", typeName(item))
		}
		return strings.Contains(c, s), nil
	case *List:
		for _, x := range *c {
			if pyEqual(x, item) {
				return true, nil
			}
		}
		return false, nil
	case *Tuple, *KeysView, *ValuesView, *ItemsView, *Range:
		for _, x := range listItems(exec.AsValue(c)) {
			if pyEqual(x, item) {
				return true, nil
			}
		}
		return false, nil
	case *exec.Dict:
		_, ok := dictGet(exec.AsValue(c), exec.AsValue(item))
		return ok, nil
	case namespace:
		s, ok := item.(string)
		_, found := c[s]
		return ok && found, nil
	}
	return false, pyErrorf("TypeError: argument of type '%s' is not iterable", typeName(container))
}

// pyStr is Python's str(), which is what {{ }} and ~ print.
func pyStr(v *exec.Value) string {
	if v == nil || !v.Val.IsValid() {
		return "None"
	}
	switch x := modelOf(v).(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool, int, float64, *List, *Tuple, *exec.Dict, *KeysView, *ValuesView, *ItemsView, *Range, namespace:
		return pyRepr(x)
	}
	return v.String()
}

func (pyHooks) Tuple(items []*exec.Value) any {
	t := make(Tuple, len(items))
	for i, v := range items {
		t[i] = modelOf(v)
	}
	return &t
}

func (pyHooks) Mapping(keys []string, values map[string]*exec.Value) any {
	d := &exec.Dict{}
	for _, k := range keys {
		d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(modelOf(values[k]))})
	}
	return d
}

var methodNames = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range listMethods.Keys() {
		m[name] = true
	}
	for _, name := range dictMethods.Keys() {
		m[name] = true
	}
	for name := range pyStrMethods {
		m[name] = true
	}
	return m
}()

// boundMethod is target.name as a value: a dict's own key first, else
// the method bound to target.
func boundMethod(e *exec.Evaluator, target *exec.Value, name string) *exec.Value {
	switch modelOf(target).(type) {
	case *exec.Dict:
		if v, ok := dictGet(target, exec.AsValue(name)); ok {
			return v
		}
		if m, ok := e.Environment.Methods.Dict.Get(name); ok {
			return exec.AsValue(func(va *exec.VarArgs) (*exec.Value, error) {
				out, err := m(nil, target, va)
				return exec.AsValue(out), err
			})
		}
	case *List:
		if m, ok := e.Environment.Methods.List.Get(name); ok {
			return exec.AsValue(func(va *exec.VarArgs) (*exec.Value, error) {
				out, err := m(nil, target, va)
				return exec.AsValue(out), err
			})
		}
	case string:
		if m, ok := e.Environment.Methods.Str.Get(name); ok {
			s := target.String()
			return exec.AsValue(func(va *exec.VarArgs) (*exec.Value, error) {
				out, err := m(s, target, va)
				return exec.AsValue(out), err
			})
		}
	}
	return exec.AsValue(fmt.Errorf("unable to evaluate %s: attribute '%s' not found", pyRepr(modelOf(target)), name))
}

// pyError is a Python exception raised by an operation ("TypeError: ...").
// It does not unwrap, so error reports show its whole message.
type pyError struct{ msg string }

func (e *pyError) Error() string { return e.msg }

func pyErrorf(format string, args ...any) error {
	return &pyError{msg: fmt.Sprintf(format, args...)}
}

// constNode reports whether an expression is made of literals only, which
// Jinja2's optimizer evaluates when compiling.
func constNode(n nodes.Expression) bool {
	switch x := n.(type) {
	case *nodes.String, *nodes.Integer, *nodes.Float, *nodes.Bool, *nodes.None:
		return true
	case *nodes.List:
		for _, it := range x.Val {
			if !constNode(it) {
				return false
			}
		}
		return true
	case *nodes.Tuple:
		for _, it := range x.Val {
			if !constNode(it) {
				return false
			}
		}
		return true
	}
	return false
}
