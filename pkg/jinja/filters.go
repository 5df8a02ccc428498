package jinja

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/brine-cm/brine/internal/gonja/exec"
)

// saltFilters are Salt's additions to Jinja (salt.utils.jinja) and the
// builtins whose gonja versions print differently from Python.
var saltFilters = map[string]exec.FilterFunction{
	"tojson":       filterToJSON,
	"json":         filterJSON,
	"json_encode":  filterJSON,
	"yaml":         filterYAML,
	"yaml_encode":  filterYAMLEncode,
	"yaml_dquote":  filterYAMLDQuote,
	"yaml_squote":  filterYAMLSQuote,
	"items":        filterItems,
	"load_yaml":    loadYAMLFilter,
	"dictsort":     filterDictSort,
	"load_json":    loadJSONFilter,
	"unique":       filterUnique,
	"python":       filterPython,
	"regex_match":  filterRegex("match"),
	"regex_search": filterRegex("search"),
	"regex_replace": func(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
		if len(p.Args) != 2 {
			return exec.AsValue(fmt.Errorf("regex_replace(pattern, replacement) takes 2 arguments"))
		}
		re, err := compileRegex(p.Args[0].String(), p.GetKeywordArgument("ignorecase", false).IsTrue())
		if err != nil {
			return exec.AsValue(err)
		}
		return exec.AsValue(re.ReplaceAllString(in.String(), pyReplacement(p.Args[1].String())))
	},
	"to_bool":  filterToBool,
	"sequence": filterSequence,
	"md5": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		sum := md5.Sum([]byte(in.String()))
		return exec.AsValue(hex.EncodeToString(sum[:]))
	},
	"sha256": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		sum := sha256.Sum256([]byte(in.String()))
		return exec.AsValue(hex.EncodeToString(sum[:]))
	},
	"base64_encode": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		return exec.AsValue(base64.StdEncoding.EncodeToString([]byte(in.String())))
	},
	"base64_decode": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		b, err := base64.StdEncoding.DecodeString(in.String())
		if err != nil {
			return exec.AsValue(fmt.Errorf("base64_decode: %w", err))
		}
		return exec.AsValue(string(b))
	},
}

// filterToJSON is Salt's tojson: json.dumps with ensure_ascii and the
// HTML-safe escapes, keys in the dict's own order.
func filterToJSON(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	indent := -1
	if v, ok := p.KwArgs["indent"]; ok && !v.IsNil() {
		indent = v.Integer()
	} else if len(p.Args) > 0 {
		indent = p.Args[0].Integer()
	}
	s := pyJSON(in, p.GetKeywordArgument("sort_keys", false).IsTrue(), indent)
	s = strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`, "'", `\u0027`).Replace(s)
	return exec.AsSafeValue(s)
}

// filterJSON is Salt's json filter: json.dumps(sort_keys=True).
func filterJSON(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	indent := -1
	if v, ok := p.KwArgs["indent"]; ok && !v.IsNil() {
		indent = v.Integer()
	}
	sortKeys := true
	if v, ok := p.KwArgs["sort_keys"]; ok {
		sortKeys = v.IsTrue()
	}
	return exec.AsSafeValue(strings.TrimSpace(pyJSON(in, sortKeys, indent)))
}

// filterYAML is Salt's yaml filter: safe_dump in flow style, stripped.
func filterYAML(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	flow := p.GetKeywordArgument("flow_style", len(p.Args) == 0 || p.Args[0].IsTrue()).IsTrue()
	if !flow {
		return exec.AsSafeValue(strings.TrimSpace(yamlBlock(modelOf(in), 0)))
	}
	return exec.AsSafeValue(yamlFlow(in.Interface(), 0, false))
}

// yamlBlock renders like PyYAML's safe_dump(default_flow_style=False):
// sorted keys, sequences in a mapping not indented.
func yamlBlock(v any, indent int) string {
	pad := strings.Repeat(" ", indent)
	switch x := unwrapModel(v).(type) {
	case *Tuple:
		return yamlBlock((*List)(x), indent)
	case *List:
		if len(*x) == 0 {
			return pad + "[]\n"
		}
		var b strings.Builder
		for _, it := range *x {
			b.WriteString(pad + "-")
			b.WriteString(yamlBlockValue(it, indent+2, true))
		}
		return b.String()
	case *exec.Dict:
		if len(x.Pairs) == 0 {
			return pad + "{}\n"
		}
		pairs := slices.Clone(x.Pairs)
		slices.SortStableFunc(pairs, func(a, c *exec.Pair) int { return strings.Compare(keyString(a.Key), keyString(c.Key)) })
		var b strings.Builder
		for _, p := range pairs {
			b.WriteString(pad + yamlScalar(keyString(p.Key), false) + ":")
			b.WriteString(yamlBlockValue(p.Value, indent, false))
		}
		return b.String()
	}
	return pad + yamlFlow(v, 0, false) + "\n"
}

// yamlBlockValue is what follows "key:" or "-": a scalar on the same line,
// a collection on the next lines.
func yamlBlockValue(v any, indent int, inSeq bool) string {
	switch x := unwrapModel(v).(type) {
	case *List, *Tuple:
		if len(listItems(exec.AsValue(x))) == 0 {
			return " []\n"
		}
		if inSeq {
			return " " + strings.TrimLeft(yamlBlock(x, indent), " ")
		}
		return "\n" + yamlBlock(x, indent)
	case *exec.Dict:
		if len(x.Pairs) == 0 {
			return " {}\n"
		}
		if inSeq {
			return " " + strings.TrimLeft(yamlBlock(x, indent), " ")
		}
		return "\n" + yamlBlock(x, indent+2)
	}
	return " " + yamlFlow(v, 0, false) + "\n"
}

// filterYAMLEncode is Salt's yaml_encode: one YAML scalar, strings
// always double-quoted; anything else is an error.
func filterYAMLEncode(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	switch x := modelOf(in).(type) {
	case string:
		return exec.AsSafeValue(yamlDouble(x))
	case nil, bool, int, float64:
		return exec.AsSafeValue(yamlFlow(x, 0, false))
	default:
		return exec.AsValue(fmt.Errorf("yaml_encode() only works with YAML scalar data; failed for %s", typeName(x)))
	}
}

func filterYAMLDQuote(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	return exec.AsSafeValue(yamlDouble(in.String()))
}

func filterYAMLSQuote(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	return exec.AsSafeValue("'" + strings.ReplaceAll(in.String(), "'", "''") + "'")
}

func filterItems(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if in.IsList() {
		return in
	}
	if !in.IsDict() {
		return exec.AsValue(fmt.Errorf("items filter needs a mapping, got %s", pyRepr(in)))
	}
	return exec.AsValue(itemsList(in))
}

// filterDictSort is Jinja's dictsort; gonja's only sees Go maps.
func filterDictSort(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	caseSensitive := p.GetKeywordArgument("case_sensitive", len(p.Args) > 0 && p.Args[0].IsTrue()).IsTrue()
	defBy := "key"
	if len(p.Args) > 1 {
		defBy = p.Args[1].String()
	}
	by := p.GetKeywordArgument("by", defBy).String()
	if by != "key" && by != "value" {
		return exec.AsValue(fmt.Errorf("dictsort: by must be 'key' or 'value', got %q", by))
	}
	reverse := p.GetKeywordArgument("reverse", len(p.Args) > 2 && p.Args[2].IsTrue()).IsTrue()
	switch modelOf(in).(type) {
	case *exec.Dict, namespace:
	default:
		return exec.AsValue(fmt.Errorf("dictsort: '%s' object has no attribute 'items'", typeName(modelOf(in))))
	}
	items := *itemsList(in)
	slices.SortStableFunc(items, func(a, b any) int {
		pa, pb := *a.(*Tuple), *b.(*Tuple)
		i := 0
		if by == "value" {
			i = 1
		}
		x, y := exec.ToValue(pa[i]), exec.ToValue(pb[i])
		if !caseSensitive && x.IsString() && y.IsString() {
			x, y = exec.AsValue(strings.ToLower(x.String())), exec.AsValue(strings.ToLower(y.String()))
		}
		c := compare(x, y)
		if reverse {
			return -c
		}
		return c
	})
	return exec.AsValue(&items)
}

func filterRegex(mode string) exec.FilterFunction {
	return func(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
		if len(p.Args) != 1 {
			return exec.AsValue(fmt.Errorf("regex_%s(pattern) takes 1 argument", mode))
		}
		pat := p.Args[0].String()
		if mode == "match" {
			pat = `\A(?:` + pat + `)`
		}
		re, err := compileRegex(pat, p.GetKeywordArgument("ignorecase", false).IsTrue())
		if err != nil {
			return exec.AsValue(err)
		}
		m := re.FindStringSubmatch(in.String())
		if m == nil {
			return exec.AsValue(nil)
		}
		// Salt returns match.groups(), a tuple.
		groups := Tuple{}
		for _, g := range m[1:] {
			groups = append(groups, g)
		}
		return exec.AsValue(&groups)
	}
}

func compileRegex(pat string, ignoreCase bool) (*regexp.Regexp, error) {
	if ignoreCase {
		pat = "(?i)" + pat
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("bad regular expression %q: %w", pat, err)
	}
	return re, nil
}

var pyGroupRef = regexp.MustCompile(`\\(\d+)`)

// pyReplacement turns Python's \1 group references into Go's ${1}.
func pyReplacement(s string) string {
	s = strings.ReplaceAll(s, "$", "$$")
	return pyGroupRef.ReplaceAllString(s, `$${$1}`)
}

// pyJSON encodes like Python's json.dumps(ensure_ascii=True).
func pyJSON(v any, sortKeys bool, indent int) string {
	var b strings.Builder
	writeJSON(&b, modelOf(exec.ToValue(v)), sortKeys, indent, 0)
	return b.String()
}

func writeJSON(b *strings.Builder, v any, sortKeys bool, indent, level int) {
	if level > maxDepth {
		b.WriteString("null")
		return
	}
	nl := func(l int) {
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*l))
		}
	}
	itemSep, keySep := ", ", ": "
	if indent >= 0 {
		itemSep = ","
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		s := pyFloat(x)
		switch s {
		case "nan":
			s = "NaN"
		case "inf":
			s = "Infinity"
		case "-inf":
			s = "-Infinity"
		}
		b.WriteString(s)
	case string:
		writeJSONString(b, x)
	case *Tuple:
		writeJSON(b, (*List)(x), sortKeys, indent, level)
	case *List:
		if len(*x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, item := range *x {
			if i > 0 {
				b.WriteString(itemSep)
			}
			nl(level + 1)
			writeJSON(b, item, sortKeys, indent, level+1)
		}
		nl(level)
		b.WriteByte(']')
	case *exec.Dict:
		if len(x.Pairs) == 0 {
			b.WriteString("{}")
			return
		}
		pairs := x.Pairs
		if sortKeys {
			pairs = slices.Clone(pairs)
			slices.SortStableFunc(pairs, func(a, c *exec.Pair) int { return strings.Compare(keyString(a.Key), keyString(c.Key)) })
		}
		b.WriteByte('{')
		for i, p := range pairs {
			if i > 0 {
				b.WriteString(itemSep)
			}
			nl(level + 1)
			writeJSONString(b, keyString(p.Key))
			b.WriteString(keySep)
			writeJSON(b, p.Value.Interface(), sortKeys, indent, level+1)
		}
		nl(level)
		b.WriteByte('}')
	default:
		writeJSONString(b, exec.AsValue(v).String())
	}
}

func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || r > 0x7e && r <= 0xffff:
				if r == 0x7f {
					b.WriteRune(r)
					continue
				}
				fmt.Fprintf(b, `\u%04x`, r)
			case r > 0xffff:
				r -= 0x10000
				fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// yamlFlow renders like PyYAML's safe_dump(default_flow_style=True)
// with Salt's stripping: flow collections, sorted keys, plain scalars
// where YAML would read them back as the same string.
func yamlFlow(v any, level int, flow bool) string {
	if level > maxDepth {
		return "null"
	}
	switch x := toModel(fromModel(v)).(type) {
	case nil:
		return "null"
	case bool:
		if x {
			return "true"
		}
		return "false"
	case int:
		return strconv.Itoa(x)
	case float64:
		s := pyFloat(x)
		switch s {
		case "nan":
			return ".nan"
		case "inf":
			return ".inf"
		case "-inf":
			return "-.inf"
		}
		return s
	case string:
		return yamlScalar(x, flow)
	case *Tuple:
		return yamlFlow((*List)(x), level, flow)
	case *List:
		parts := make([]string, len(*x))
		for i, item := range *x {
			parts[i] = yamlFlow(item, level+1, true)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *exec.Dict:
		pairs := slices.Clone(x.Pairs)
		slices.SortStableFunc(pairs, func(a, c *exec.Pair) int { return strings.Compare(keyString(a.Key), keyString(c.Key)) })
		parts := make([]string, len(pairs))
		for i, p := range pairs {
			parts[i] = yamlScalar(keyString(p.Key), true) + ": " + yamlFlow(p.Value.Interface(), level+1, true)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	default:
		return yamlScalar(exec.AsValue(v).String(), flow)
	}
}

// yaml11Implicit matches plain scalars YAML 1.1 (PyYAML) would not read
// back as strings.
var yaml11Implicit = regexp.MustCompile(`^(?:` +
	`[-+]?(?:0|[1-9][0-9_]*)|0[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+` + // int
	`|[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)` + // float
	`|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF` + // bool
	`|~|null|Null|NULL|` + // null
	`|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?.*` + // timestamp
	`|<<|=)$`)

// yamlScalar follows PyYAML's analyze_scalar closely enough for the
// values states hold: plain when unambiguous, else single-quoted.
func yamlScalar(s string, flow bool) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if r == '\n' || r == '\r' || (!unicode.IsPrint(r) && r != ' ') || r == utf8.RuneError {
			return yamlDouble(s)
		}
	}
	plain := !yaml11Implicit.MatchString(s) &&
		!strings.HasPrefix(s, " ") && !strings.HasSuffix(s, " ") &&
		!strings.ContainsAny(s[:1], "#,[]{}&*!|>'\"%@`") &&
		!strings.Contains(s, ": ") && !strings.Contains(s, " #") && !strings.HasSuffix(s, ":")
	if strings.ContainsAny(s[:1], "-?:") && (len(s) == 1 || s[1] == ' ') {
		plain = false
	}
	if flow && strings.ContainsAny(s, ",?[]{}:") {
		plain = false
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func yamlDouble(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\x%02X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// filterToBool is Salt's to_bool.
func filterToBool(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	switch x := modelOf(in).(type) {
	case nil:
		return exec.AsValue(false)
	case bool:
		return exec.AsValue(x)
	case string:
		switch strings.ToLower(x) {
		case "yes", "1", "true":
			return exec.AsValue(true)
		}
		return exec.AsValue(false)
	case int:
		return exec.AsValue(x > 0)
	case *List, *exec.Dict, namespace:
		return exec.AsValue(in.IsTrue())
	}
	return exec.AsValue(false)
}

// filterSequence is Salt's sequence (ensure_sequence_filter): strings,
// tuples and dicts are wrapped in a list, lists pass through.
func filterSequence(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	switch x := modelOf(in).(type) {
	case string, *Tuple, *exec.Dict:
		l := List{x}
		return exec.AsValue(&l)
	}
	return in
}
