package jinja

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/brine-cm/brine/internal/gonja/exec"
)

// pyPercent is Python's printf-style `format % args`: a tuple gives the
// positional arguments, a dict the %(name)s ones, anything else is the
// single argument.
func pyPercent(format string, args any) (string, error) {
	var pos []any
	var named *exec.Dict
	switch x := args.(type) {
	case *Tuple:
		pos = *x
	case *exec.Dict:
		named = x
		pos = []any{x}
	default:
		pos = []any{x}
	}
	var b strings.Builder
	next := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", pyErrorf("TypeError: incomplete format")
		}
		var arg any
		haveArg := false
		if format[i] == '(' {
			end := strings.IndexByte(format[i:], ')')
			if end < 0 || named == nil {
				return "", pyErrorf("TypeError: format requires a mapping")
			}
			key := format[i+1 : i+end]
			v, ok := dictGet(exec.AsValue(named), exec.AsValue(key))
			if !ok {
				return "", fmt.Errorf("KeyError: %s", pyStrRepr(key))
			}
			arg, haveArg = modelOf(v), true
			i += end + 1
		}
		start := i
		for i < len(format) && strings.IndexByte("-+ #0123456789.", format[i]) >= 0 {
			i++
		}
		if i >= len(format) {
			return "", pyErrorf("TypeError: incomplete format")
		}
		spec, verb := format[start:i], format[i]
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if !haveArg {
			if next >= len(pos) {
				return "", pyErrorf("TypeError: not enough arguments for format string")
			}
			arg = pos[next]
			next++
		}
		s, err := percentOne(spec, verb, arg)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	if named == nil && next < len(pos) {
		return "", pyErrorf("TypeError: not all arguments converted during string formatting")
	}
	return b.String(), nil
}

func percentOne(spec string, verb byte, arg any) (string, error) {
	switch verb {
	case 's':
		return fmt.Sprintf("%"+spec+"s", pyStr(exec.AsValue(arg))), nil
	case 'r':
		return fmt.Sprintf("%"+spec+"s", pyRepr(arg)), nil
	case 'd', 'i', 'u':
		i, f, isInt, ok := number(arg)
		if !ok {
			return "", pyErrorf("TypeError: %%%c format: a real number is required, not %s", verb, typeName(arg))
		}
		if !isInt {
			i = int(f)
		}
		return fmt.Sprintf("%"+spec+"d", i), nil
	case 'x', 'X', 'o':
		i, _, isInt, ok := number(arg)
		if !ok || !isInt {
			return "", pyErrorf("TypeError: %%%c format: an integer is required, not %s", verb, typeName(arg))
		}
		return fmt.Sprintf("%"+spec+string(verb), i), nil
	case 'f', 'F', 'e', 'E', 'g', 'G':
		_, f, _, ok := number(arg)
		if !ok {
			return "", pyErrorf("TypeError: must be real number, not %s", typeName(arg))
		}
		if !strings.Contains(spec, ".") && verb != 'g' && verb != 'G' {
			spec += ".6"
		}
		return fmt.Sprintf("%"+spec+string(verb), f), nil
	case 'c':
		if i, ok := arg.(int); ok {
			return string(rune(i)), nil
		}
		return pyStr(exec.AsValue(arg)), nil
	}
	return "", fmt.Errorf("ValueError: unsupported format character %s", strconv.QuoteRune(rune(verb)))
}
