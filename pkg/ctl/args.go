package ctl

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"
)

// ParseArgs splits command-line job arguments the way Salt's parse_input
// does: "key=value" (key starting with a letter or underscore, made of word
// characters, dots and dashes; "a==b" is not one) becomes a keyword
// argument, anything else is positional. Every value goes through
// ParseValue. A keyword given twice is an error rather than Salt's silent
// last-wins, because it is almost always a typo.
func ParseArgs(in []string) (args []any, kwargs map[string]any, err error) {
	args = []any{}
	kwargs = map[string]any{}
	for _, a := range in {
		if !utf8.ValidString(a) {
			// The wire carries text as UTF-8; mangling bytes silently could
			// name the wrong file on the minion.
			return nil, nil, fmt.Errorf("argument %q is not valid UTF-8", a)
		}
		if k, v, ok := splitKwarg(a); ok {
			if _, dup := kwargs[k]; dup {
				return nil, nil, fmt.Errorf("keyword argument %q given twice", k)
			}
			kwargs[k] = ParseValue(v)
			continue
		}
		args = append(args, ParseValue(a))
	}
	return args, kwargs, nil
}

func splitKwarg(s string) (key, val string, ok bool) {
	i := strings.IndexByte(s, '=')
	if i <= 0 || strings.HasPrefix(s[i+1:], "=") {
		return "", "", false
	}
	key = s[:i]
	for j, r := range key {
		word := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
		if j == 0 && (!word || unicode.IsDigit(r)) {
			return "", "", false
		}
		if !word && r != '.' && r != '-' {
			return "", "", false
		}
	}
	return key, s[i+1:], true
}

// maxExactInt is the largest integer a JSON/structpb number carries
// exactly; bigger integers (JIDs, serial numbers) stay strings.
const maxExactInt = 1 << 53

// maxNodes bounds the work an argument may cause (YAML alias bombs).
const maxNodes = 10000

var leadingZeroInt = regexp.MustCompile(`^[-+]?0[0-9_]+$`)

// ParseValue turns one command-line value into data like Salt's
// yamlify_arg: numbers, true/false, null/None, [lists] and {mappings}
// are parsed as YAML; everything else, and anything YAML cannot parse,
// stays the original string. Salt's special cases are kept: a mapping or
// list only counts when the text starts with "{" or "[", digits with
// underscores stay strings, text with "#" stays a string unless it parses
// to a non-string, "|" and "!" stay themselves, and YAML 1.1 booleans
// (yes/no/on/off) are booleans as with PyYAML. As with Salt's YAML
// loader, a leading zero does not mean octal: 0644 is the integer 644.
// Timestamps stay strings, and integers beyond 2^53 stay strings so they
// are not rounded on the wire.
func ParseValue(s string) any {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" {
		return s
	}
	if strings.Contains(trimmed, "_") && strings.Trim(trimmed, "0123456789_") == "" {
		return s
	}
	if s == "None" {
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return s
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return s // only a comment, or nothing
	}
	budget := maxNodes
	v, err := fromNode(doc.Content[0], &budget)
	if err != nil {
		return s
	}
	switch x := v.(type) {
	case map[string]any:
		if !strings.HasPrefix(s, "{") {
			return s
		}
	case []any:
		if !strings.HasPrefix(s, "[") {
			return s
		}
	case string:
		if strings.Contains(s, "#") || (x == "" && (s == "|" || s == "!")) {
			return s
		}
	case nil:
		if strings.Contains(s, "#") || s == "!" {
			return s
		}
	}
	return v
}

// fromNode converts a YAML node into structpb-compatible data.
func fromNode(n *yaml.Node, budget *int) (any, error) {
	*budget--
	if *budget < 0 {
		return nil, fmt.Errorf("value too large")
	}
	switch n.Kind {
	case yaml.AliasNode:
		return fromNode(n.Alias, budget)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := fromNode(c, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := n.Content[i]
			if kn.ShortTag() == "!!merge" {
				return nil, fmt.Errorf("merge keys are not supported")
			}
			k, err := fromNode(kn, budget)
			if err != nil {
				return nil, err
			}
			v, err := fromNode(n.Content[i+1], budget)
			if err != nil {
				return nil, err
			}
			out[keyString(k)] = v
		}
		return out, nil
	case yaml.ScalarNode:
		return fromScalar(n)
	}
	return nil, fmt.Errorf("unsupported YAML node kind %d", n.Kind)
}

func fromScalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!str":
		if n.Style == 0 {
			switch n.Value {
			case "yes", "Yes", "YES", "on", "On", "ON":
				return true, nil
			case "no", "No", "NO", "off", "Off", "OFF":
				return false, nil
			}
		}
		return n.Value, nil
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return b, nil
	case "!!int":
		text := n.Value
		if leadingZeroInt.MatchString(text) {
			sign := ""
			if text[0] == '-' || text[0] == '+' {
				sign, text = text[:1], text[1:]
			}
			text = sign + strings.TrimLeft(text, "0_")
			if text == "" || text == "-" || text == "+" {
				text += "0"
			}
		}
		var i int64
		if err := (&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: text}).Decode(&i); err != nil {
			return n.Value, nil // beyond int64: keep the digits
		}
		if i > maxExactInt || i < -maxExactInt {
			return n.Value, nil
		}
		return i, nil
	case "!!float":
		if strings.Trim(n.Value, "+-0123456789_") == "" {
			return n.Value, nil // an integer too big for int64: keep the digits
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return n.Value, nil
		}
		return f, nil
	case "!!timestamp":
		return n.Value, nil
	}
	return nil, fmt.Errorf("unsupported YAML tag %s", n.ShortTag())
}

// keyString renders a non-string mapping key as JSON would.
func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(k)
}

// toWire converts parsed arguments into their wire form.
func toWire(args []any, kwargs map[string]any) (*structpb.ListValue, *structpb.Struct, error) {
	l, err := structpb.NewList(args)
	if err != nil {
		return nil, nil, fmt.Errorf("encode arguments: %w", err)
	}
	s, err := structpb.NewStruct(kwargs)
	if err != nil {
		return nil, nil, fmt.Errorf("encode keyword arguments: %w", err)
	}
	return l, s, nil
}
