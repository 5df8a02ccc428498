package jinja

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/brine-cm/brine/internal/gonja/exec"
)

// strFormat is Python's str.format: {} {0} {name}, field paths
// ({0[0]}, {d[key]}, {u.name}), !r/!s and the format-spec mini-language.
func strFormat(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
	var b strings.Builder
	auto := 0
	for i := 0; i < len(self); i++ {
		c := self[i]
		switch {
		case c == '{' && i+1 < len(self) && self[i+1] == '{':
			b.WriteByte('{')
			i++
			continue
		case c == '}' && i+1 < len(self) && self[i+1] == '}':
			b.WriteByte('}')
			i++
			continue
		case c == '}':
			return nil, fmt.Errorf("ValueError: single '}' encountered in format string")
		case c != '{':
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(self[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("ValueError: single '{' encountered in format string")
		}
		field := self[i+1 : i+end]
		i += end
		spec, conv := "", ""
		if j := strings.IndexByte(field, ':'); j >= 0 {
			field, spec = field[:j], field[j+1:]
		}
		if strings.Contains(spec, "{") {
			// A nested field in the spec: {:{width}}.
			if end := strings.IndexByte(self[i+1:], '}'); end >= 0 && strings.Count(field+":"+spec, "{") > strings.Count(field+":"+spec, "}") {
				spec += "}" + self[i+1:i+1+end]
				i += end + 1
			}
			inner, err := strFormat(spec, nil, a)
			if err != nil {
				return nil, err
			}
			spec = inner.(string)
		}
		if j := strings.IndexByte(field, '!'); j >= 0 {
			field, conv = field[:j], field[j+1:]
		}
		v, err := formatField(field, &auto, a)
		if err != nil {
			return nil, err
		}
		switch conv {
		case "r", "a":
			v = pyRepr(v)
		case "s":
			v = pyStr(exec.AsValue(v))
		case "":
		default:
			return nil, fmt.Errorf("ValueError: unknown conversion specifier %s", conv)
		}
		s, err := formatSpec(v, spec)
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func formatField(field string, auto *int, a *exec.VarArgs) (any, error) {
	name, rest := field, ""
	if j := strings.IndexAny(field, ".["); j >= 0 {
		name, rest = field[:j], field[j:]
	}
	var v any
	switch {
	case name == "":
		if *auto >= len(a.Args) {
			return nil, fmt.Errorf("IndexError: Replacement index %d out of range for positional args tuple", *auto)
		}
		v = modelOf(a.Args[*auto])
		*auto++
	case name[0] >= '0' && name[0] <= '9':
		n, err := strconv.Atoi(name)
		if err != nil || n >= len(a.Args) {
			return nil, fmt.Errorf("IndexError: Replacement index %s out of range for positional args tuple", name)
		}
		v = modelOf(a.Args[n])
	default:
		kw, ok := a.KwArgs[name]
		if !ok {
			return nil, fmt.Errorf("KeyError: %s", pyStrRepr(name))
		}
		v = modelOf(kw)
	}
	for rest != "" {
		var key string
		if rest[0] == '.' {
			j := strings.IndexAny(rest[1:], ".[")
			if j < 0 {
				key, rest = rest[1:], ""
			} else {
				key, rest = rest[1:j+1], rest[j+1:]
			}
		} else {
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				return nil, fmt.Errorf("ValueError: Missing ']' in format string")
			}
			key, rest = rest[1:j], rest[j+1:]
		}
		switch x := v.(type) {
		case *List, *Tuple:
			n, err := strconv.Atoi(key)
			items := listItems(exec.AsValue(x))
			if err != nil || n < 0 || n >= len(items) {
				return nil, fmt.Errorf("IndexError: list index out of range")
			}
			v = unwrapModel(items[n])
		case *exec.Dict:
			var k any = key
			if n, err := strconv.Atoi(key); err == nil {
				k = n
			}
			item, ok := dictGet(exec.AsValue(x), exec.AsValue(k))
			if !ok {
				if item, ok = dictGet(exec.AsValue(x), exec.AsValue(key)); !ok {
					return nil, fmt.Errorf("KeyError: %s", pyStrRepr(key))
				}
			}
			v = modelOf(item)
		default:
			return nil, fmt.Errorf("AttributeError: %s has no attribute %s", typeName(v), key)
		}
	}
	return v, nil
}

// formatSpec applies [[fill]align][sign][#][0][width][,|_][.precision][type].
func formatSpec(v any, spec string) (string, error) {
	if spec == "" {
		return pyStr(exec.AsValue(v)), nil
	}
	fill, align := " ", byte(0)
	r, size := utf8.DecodeRuneInString(spec)
	if len(spec) > size && strings.IndexByte("<>^=", spec[size]) >= 0 {
		fill, align, spec = string(r), spec[size], spec[size+1:]
	} else if spec != "" && strings.IndexByte("<>^=", spec[0]) >= 0 {
		align, spec = spec[0], spec[1:]
	}
	sign := byte('-')
	if spec != "" && strings.IndexByte("+- ", spec[0]) >= 0 {
		sign, spec = spec[0], spec[1:]
	}
	alt := false
	if spec != "" && spec[0] == '#' {
		alt, spec = true, spec[1:]
	}
	if spec != "" && spec[0] == '0' {
		if align == 0 {
			fill, align = "0", '='
		}
		spec = spec[1:]
	}
	i := 0
	for i < len(spec) && spec[i] >= '0' && spec[i] <= '9' {
		i++
	}
	width, _ := strconv.Atoi(spec[:i])
	spec = spec[i:]
	group := ""
	if spec != "" && (spec[0] == ',' || spec[0] == '_') {
		group, spec = spec[:1], spec[1:]
	}
	precision := -1
	if spec != "" && spec[0] == '.' {
		j := 1
		for j < len(spec) && spec[j] >= '0' && spec[j] <= '9' {
			j++
		}
		precision, _ = strconv.Atoi(spec[1:j])
		spec = spec[j:]
	}
	typ := byte(0)
	if len(spec) == 1 {
		typ = spec[0]
	} else if spec != "" {
		return "", fmt.Errorf("ValueError: Invalid format specifier")
	}

	var body, prefix string
	numeric := false
	switch x := v.(type) {
	case string:
		if typ != 0 && typ != 's' {
			return "", fmt.Errorf("ValueError: Unknown format code '%c' for object of type 'str'", typ)
		}
		body = x
		if precision >= 0 && utf8.RuneCountInString(body) > precision {
			body = string([]rune(body)[:precision])
		}
		if align == 0 {
			align = '<'
		}
	case bool, int, float64:
		numeric = true
		iv, fv, isInt, _ := number(x)
		if b, ok := x.(bool); ok && typ == 0 {
			body = pyRepr(b)
			numeric = false
			break
		}
		neg := fv < 0 || (isInt && iv < 0)
		if isInt && (typ == 0 || strings.IndexByte("dxXobn", typ) >= 0) {
			if iv < 0 {
				iv = -iv
			}
			switch typ {
			case 'x':
				body = strconv.FormatInt(int64(iv), 16)
				if alt {
					prefix = "0x"
				}
			case 'X':
				body = strings.ToUpper(strconv.FormatInt(int64(iv), 16))
				if alt {
					prefix = "0X"
				}
			case 'o':
				body = strconv.FormatInt(int64(iv), 8)
				if alt {
					prefix = "0o"
				}
			case 'b':
				body = strconv.FormatInt(int64(iv), 2)
				if alt {
					prefix = "0b"
				}
			default:
				body = strconv.Itoa(iv)
			}
		} else {
			f := math.Abs(fv)
			switch typ {
			case 'f', 'F':
				if precision < 0 {
					precision = 6
				}
				body = strconv.FormatFloat(f, 'f', precision, 64)
			case 'e', 'E':
				if precision < 0 {
					precision = 6
				}
				body = fixExp(strconv.FormatFloat(f, 'e', precision, 64))
				if typ == 'E' {
					body = strings.ToUpper(body)
				}
			case '%':
				if precision < 0 {
					precision = 6
				}
				body = strconv.FormatFloat(f*100, 'f', precision, 64) + "%"
			case 'g', 'G':
				if precision < 0 {
					precision = 6
				}
				body = fixExp(strconv.FormatFloat(f, 'g', max(precision, 1), 64))
			case 0:
				if precision >= 0 {
					body = fixExp(strconv.FormatFloat(f, 'g', max(precision, 1), 64))
				} else {
					body = pyFloat(f)
				}
			default:
				return "", fmt.Errorf("ValueError: Unknown format code '%c' for object of type 'float'", typ)
			}
		}
		if group != "" {
			intPart, frac, _ := strings.Cut(body, ".")
			var g strings.Builder
			for k, ch := range intPart {
				if k > 0 && (len(intPart)-k)%3 == 0 {
					g.WriteString(group)
				}
				g.WriteRune(ch)
			}
			body = g.String()
			if frac != "" {
				body += "." + frac
			}
		}
		switch {
		case neg:
			prefix = "-" + prefix
		case sign == '+':
			prefix = "+" + prefix
		case sign == ' ':
			prefix = " " + prefix
		}
		if align == 0 {
			align = '>'
		}
	default:
		body = pyStr(exec.AsValue(v))
		if align == 0 {
			align = '<'
		}
	}
	n := width - utf8.RuneCountInString(prefix+body)
	if n <= 0 {
		return prefix + body, nil
	}
	pad := strings.Repeat(fill, n)
	switch align {
	case '<':
		return prefix + body + pad, nil
	case '^':
		left := strings.Repeat(fill, n/2)
		return left + prefix + body + strings.Repeat(fill, n-n/2), nil
	case '=':
		if numeric {
			return prefix + pad + body, nil
		}
		return pad + prefix + body, nil
	}
	return pad + prefix + body, nil
}

// fixExp writes exponents with at least two digits, as Python does.
func fixExp(s string) string {
	i := strings.IndexAny(s, "eE")
	if i < 0 || i+2 >= len(s)+1 {
		return s
	}
	mant, exp := s[:i+2], s[i+2:]
	if len(exp) < 2 {
		exp = "0" + exp
	}
	return mant + exp
}
