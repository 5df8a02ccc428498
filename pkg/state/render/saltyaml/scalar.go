// Package saltyaml reads YAML the way Salt does (PyYAML's YAML 1.1
// resolvers plus salt.utils.yamlloader), on top of yaml.v3 (YAML 1.2).
// It is a leaf package so that both the SLS compiler and the Jinja
// engine's import_yaml/load_yaml can share one reading of a file.
package saltyaml

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Salt reads YAML with PyYAML (YAML 1.1) plus its own loader
// (salt.utils.yamlloader); yaml.v3 speaks YAML 1.2. Plain (unquoted,
// untagged) scalars are therefore resolved here with PyYAML's implicit
// resolvers and Salt's constructors, so an SLS means what it means to
// Salt: yes/no/on/off are booleans, 0644 is the integer 644 (Salt strips
// leading zeros before PyYAML would read octal; file modes then read its
// digits as octal, so `mode: 0644` is 0644), 1e3 and 0o644 are strings,
// 1_000 is 1000, 1:30 is 90 (sexagesimal), timestamps stay strings.
var (
	pyBool  = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	pyNull  = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
	pyInt   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	pyFloat = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
)

// Scalar resolves one scalar node. Quoted and explicitly tagged scalars
// keep yaml.v3's reading; plain ones get PyYAML's.
func Scalar(n *yaml.Node) (any, error) {
	if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		return plainScalar(n.Value)
	}
	if n.Style&yaml.TaggedStyle == 0 {
		return n.Value, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case int64:
		return int(x), nil
	case uint64:
		return float64(x), nil
	case time.Time:
		return n.Value, nil
	}
	return v, nil
}

func plainScalar(s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	// PyYAML picks resolvers by the first character; most scalars (names,
	// paths, commands) need no regular expression at all.
	switch c := s[0]; {
	case c >= '0' && c <= '9', c == '-', c == '+', c == '.':
	case c == '~', c == 'y', c == 'Y', c == 'n', c == 'N', c == 't', c == 'T', c == 'f', c == 'F', c == 'o', c == 'O':
		if len(s) > 5 {
			return s, nil
		}
	default:
		return s, nil
	}
	switch {
	case pyNull.MatchString(s):
		return nil, nil
	case pyBool.MatchString(s):
		switch s[0] {
		case 'y', 'Y', 't', 'T':
			return true, nil
		case 'o', 'O':
			return s == "on" || s == "On" || s == "ON", nil
		}
		return false, nil
	case pyInt.MatchString(s):
		return pyIntValue(s)
	case pyFloat.MatchString(s):
		return pyFloatValue(s)
	}
	// Everything else, timestamps included, is a string: Salt registers
	// no datetime constructor for SLS data.
	return s, nil
}

func pyIntValue(s string) (any, error) {
	// salt.utils.yamlloader: "0644" -> "644" before PyYAML sees it.
	if s != "0" && strings.HasPrefix(s, "0") && !strings.HasPrefix(s, "0b") && !strings.HasPrefix(s, "0x") {
		s = strings.TrimLeft(s, "0")
		if s == "" {
			s = "0"
		}
	}
	v := strings.ReplaceAll(s, "_", "")
	sign := int64(1)
	if v != "" && (v[0] == '-' || v[0] == '+') {
		if v[0] == '-' {
			sign = -1
		}
		v = v[1:]
	}
	var n int64
	var err error
	switch {
	case v == "" || v == "0":
		return 0, nil
	case strings.HasPrefix(v, "0b"):
		n, err = strconv.ParseInt(v[2:], 2, 64)
	case strings.HasPrefix(v, "0x"):
		n, err = strconv.ParseInt(v[2:], 16, 64)
	case v[0] == '0':
		n, err = strconv.ParseInt(v, 8, 64)
	case strings.Contains(v, ":"):
		for _, part := range strings.Split(v, ":") {
			d, perr := strconv.ParseInt(part, 10, 64)
			if perr != nil {
				return nil, fmt.Errorf("integer %q: %w", s, perr)
			}
			n = n*60 + d
		}
	default:
		n, err = strconv.ParseInt(v, 10, 64)
	}
	if err != nil {
		// Python's integers have no size limit; a float keeps the
		// magnitude at least.
		if f, ferr := strconv.ParseFloat(v, 64); ferr == nil && !strings.HasPrefix(v, "0") {
			return float64(sign) * f, nil
		}
		return nil, fmt.Errorf("integer %q: %w", s, err)
	}
	return int(sign * n), nil
}

func pyFloatValue(s string) (any, error) {
	v := strings.ToLower(strings.ReplaceAll(s, "_", ""))
	sign := 1.0
	if v[0] == '-' || v[0] == '+' {
		if v[0] == '-' {
			sign = -1
		}
		v = v[1:]
	}
	switch {
	case v == ".inf":
		return sign * math.Inf(1), nil
	case v == ".nan":
		return math.NaN(), nil
	case strings.Contains(v, ":"):
		parts := strings.Split(v, ":")
		var f float64
		for i, part := range parts {
			d, err := strconv.ParseFloat(part, 64)
			if err != nil || (i < len(parts)-1 && strings.Contains(part, ".")) {
				return nil, fmt.Errorf("float %q: not a number", s)
			}
			f = f*60 + d
		}
		return sign * f, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil, fmt.Errorf("float %q: %w", s, err)
	}
	return sign * f, nil
}

// KeyString is the string form of a decoded mapping key, as Python would
// print it: on: and yes: keys become "True", ~: becomes "None".
func KeyString(k any) string {
	switch x := k.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return PyFloat(x)
	}
	return fmt.Sprint(k)
}

// PyFloat prints a float as Python's repr() and str() do: 1.0, 0.5,
// 1e+16, 1e-05, inf, nan. The Jinja engine prints floats with it too.
func PyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	// Python switches to exponent form by the exponent of the shortest
	// repr, not by magnitude: 9.999999999999999e+15 vs 1e+16.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	x, _ := strconv.Atoi(exp)
	if x < -4 || x >= 16 {
		sign := "+"
		if x < 0 {
			sign = "-"
			x = -x
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, x)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
