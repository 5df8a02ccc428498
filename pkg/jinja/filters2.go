package jinja

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"github.com/brine-cm/brine/internal/gonja/tokens"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// jinja2Filters are builtin filters whose gonja versions differ from
// Jinja2's.
var jinja2Filters = map[string]exec.FilterFunction{
	"format":    filterFormat,
	"pprint":    filterPPrint,
	"urlencode": filterURLEncode,
	"round":     filterRound,
	"attr":      filterAttr,
	"default":   filterDefault,
	"d":         filterDefault,
	"max":       filterMinMax(1),
	"min":       filterMinMax(-1),
	"string":    filterString,
	"sort":      filterSort,
	"sum":       filterSum,
	"int":       filterInt,
	"float":     filterFloat,
	"first":     filterFirstLast(true),
	"last":      filterFirstLast(false),
	"abs":       filterAbs,
	"wordcount": filterWordcount,
	"upper": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		if in.IsError() {
			return in
		}
		return exec.AsValue(cases.Upper(language.Und).String(pyStr(in)))
	},
	"lower": func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		if in.IsError() {
			return in
		}
		return exec.AsValue(cases.Lower(language.Und).String(pyStr(in)))
	},
	"center": filterCenter,
}

func filterFormat(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	var args any
	if len(p.KwArgs) > 0 {
		d := &exec.Dict{}
		for _, k := range p.KwNames() {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(modelOf(p.KwArgs[k]))})
		}
		args = d
	} else {
		t := Tuple{}
		for _, a := range p.Args {
			t = append(t, modelOf(a))
		}
		args = &t
	}
	s, err := pyPercent(in.String(), args)
	if err != nil {
		return exec.AsValue(fmt.Errorf("format: %w", err))
	}
	return exec.AsValue(s)
}

func filterPPrint(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	return exec.AsValue(pyRepr(modelOf(in)))
}

func filterString(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	return exec.AsValue(pyStr(in))
}

// filterURLEncode is Jinja2's urlencode: quote(safe="/") for strings,
// urlencode of the pairs for dicts.
func filterURLEncode(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	quote := func(s string, safe string) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~"+safe, c) >= 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	if d, ok := modelOf(in).(*exec.Dict); ok {
		parts := make([]string, 0, len(d.Pairs))
		for _, p := range d.Pairs {
			parts = append(parts, url.QueryEscape(pyStr(p.Key))+"="+url.QueryEscape(pyStr(p.Value)))
		}
		return exec.AsValue(strings.Join(parts, "&"))
	}
	return exec.AsValue(quote(pyStr(in), "/"))
}

// filterRound rounds like Jinja2: 'common' is Python's round() (halves
// to even), 'ceil' and 'floor' round away; the result is always a float.
func filterRound(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	_, f, _, ok := number(modelOf(in))
	if !ok {
		return exec.AsValue(fmt.Errorf("round: %s is not a number", pyRepr(modelOf(in))))
	}
	precision := 0
	method := "common"
	if len(p.Args) > 0 {
		precision = p.Args[0].Integer()
	}
	if len(p.Args) > 1 {
		method = p.Args[1].String()
	}
	if v, ok := p.KwArgs["precision"]; ok {
		precision = v.Integer()
	}
	if v, ok := p.KwArgs["method"]; ok {
		method = v.String()
	}
	scale := math.Pow(10, float64(precision))
	if i, isInt := modelOf(in).(int); isInt && method == "common" {
		// round() of an int is an int in Python.
		if precision >= 0 {
			return exec.AsValue(i)
		}
		r, err := binaryOp(tokens.Multiply, "*", int(math.RoundToEven(float64(i)*scale)), int(math.Round(1/scale)))
		if err != nil {
			return exec.AsValue(err)
		}
		return exec.AsValue(r)
	}
	switch method {
	case "common":
		// Python's round() rounds the exact binary value half to even;
		// strconv does the same, where f*scale would round twice.
		if precision >= 0 {
			r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', precision, 64), 64)
			return exec.AsValue(r)
		}
		return exec.AsValue(math.RoundToEven(f*scale) / scale)
	case "ceil":
		return exec.AsValue(math.Ceil(f*scale) / scale)
	case "floor":
		return exec.AsValue(math.Floor(f*scale) / scale)
	}
	return exec.AsValue(fmt.Errorf("round: method must be common, ceil or floor, not %q", method))
}

// filterAttr is getattr(): a dict's keys are items, not attributes.
func filterAttr(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(p.Args) != 1 {
		return exec.AsValue(fmt.Errorf("attr takes one argument"))
	}
	name := p.Args[0].String()
	if ns, ok := modelOf(in).(namespace); ok {
		if v, ok := ns[name]; ok {
			return exec.AsValue(v)
		}
	}
	return exec.AsValue(fmt.Errorf("'%s object' has no attribute '%s'", typeName(modelOf(in)), name))
}

// filterDefault is Jinja2's default: only an undefined value (an error
// here, as templates run with StrictUndefined) is replaced, or with
// boolean=true any false value. None is a value.
func filterDefault(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	def := exec.AsValue("")
	if len(p.Args) > 0 {
		def = p.Args[0]
	} else if v, ok := p.KwArgs["default_value"]; ok {
		def = v
	}
	boolean := len(p.Args) > 1 && p.Args[1].IsTrue()
	if v, ok := p.KwArgs["boolean"]; ok {
		boolean = v.IsTrue()
	}
	if in.IsError() {
		if isUndefined(in) {
			return def
		}
		return in
	}
	if boolean && !in.IsTrue() {
		return def
	}
	return in
}

// isUndefined tells an undefined name, attribute or item apart from a
// real failure (a function's error) that default must not hide.
func isUndefined(v *exec.Value) bool {
	msg := v.Error()
	for _, s := range []string{"Unable to evaluate name", "not found", "argument is undefined", "there is no previous item", "there is no next item"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func filterMinMax(sign int) exec.FilterFunction {
	return func(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
		if in.IsError() {
			return in
		}
		caseSensitive := p.GetKeywordArgument("case_sensitive", false).IsTrue()
		attr := ""
		if v, ok := p.KwArgs["attribute"]; ok {
			attr = v.String()
		}
		var best any
		var bestKey any
		found := false
		for _, it := range iterItems(in) {
			key := it
			if attr != "" {
				v, ok := attrPath(it, attr)
				if !ok {
					return exec.AsValue(fmt.Errorf("'%s' is undefined", attr))
				}
				key = v
			}
			if s, ok := key.(string); ok && !caseSensitive {
				key = strings.ToLower(s)
			}
			if !found {
				best, bestKey, found = it, key, true
				continue
			}
			c, err := pyCompare(key, bestKey)
			if err != nil {
				return exec.AsValue(pyErrorf("TypeError: cannot compare %s and %s", typeName(key), typeName(bestKey)))
			}
			if c*sign > 0 {
				best, bestKey = it, key
			}
		}
		if !found {
			return exec.AsValue(fmt.Errorf("no aggregated item, sequence was empty"))
		}
		return exec.AsValue(best)
	}
}

// attrPath follows a dotted attribute path (Jinja2's make_attrgetter).
func attrPath(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		d, ok := unwrapModel(v).(*exec.Dict)
		if !ok {
			return nil, false
		}
		item, ok := dictGet(exec.AsValue(d), exec.AsValue(part))
		if !ok {
			return nil, false
		}
		v = modelOf(item)
	}
	return v, true
}

func mergeFilters(sets ...map[string]exec.FilterFunction) map[string]exec.FilterFunction {
	out := map[string]exec.FilterFunction{}
	for _, s := range sets {
		for k, f := range s {
			out[k] = f
		}
	}
	return out
}

// filterSort is Jinja2's sort: Python ordering (mixing types is an error),
// case-insensitive for strings unless case_sensitive, stable.
func filterSort(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	reverse := p.GetKeywordArgument("reverse", len(p.Args) > 0 && p.Args[0].IsTrue()).IsTrue()
	caseSensitive := p.GetKeywordArgument("case_sensitive", len(p.Args) > 1 && p.Args[1].IsTrue()).IsTrue()
	attr := ""
	if v, ok := p.KwArgs["attribute"]; ok {
		attr = v.String()
	} else if len(p.Args) > 2 {
		attr = p.Args[2].String()
	}
	items := iterItems(in)
	keys := make([]any, len(items))
	for i, it := range items {
		k := unwrapModel(it)
		if attr != "" {
			v, ok := attrPath(k, attr)
			if !ok {
				return exec.AsValue(fmt.Errorf("sort: '%s' is undefined", attr))
			}
			k = v
		}
		if s, ok := k.(string); ok && !caseSensitive {
			k = strings.ToLower(s)
		}
		keys[i] = k
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	var sortErr error
	slices.SortStableFunc(idx, func(x, y int) int {
		c, err := pyCompare(keys[x], keys[y])
		if err != nil && sortErr == nil {
			sortErr = pyErrorf("TypeError: '<' not supported between instances of '%s' and '%s'", typeName(keys[x]), typeName(keys[y]))
		}
		if reverse {
			return -c
		}
		return c
	})
	if sortErr != nil {
		return exec.AsValue(sortErr)
	}
	out := make(List, len(items))
	for i, j := range idx {
		out[i] = unwrapModel(items[j])
	}
	return exec.AsValue(&out)
}

func filterCenter(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	width := p.GetKeywordArgument("width", 80)
	if len(p.Args) > 0 {
		width = p.Args[0]
	}
	out, err := padMethod(pyStr(in), &exec.VarArgs{Args: []*exec.Value{width}}, "center")
	if err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(out)
}

// filterUnique is Salt's unique (salt.utils.jinja), which replaces
// Jinja2's: a list of the distinct items in order, case-sensitive.
func filterUnique(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	out := List{}
	for _, it := range iterItems(in) {
		it = unwrapModel(it)
		dup := false
		for _, seen := range out {
			if pyEqual(seen, it) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, it)
		}
	}
	return exec.AsValue(&out)
}

// filterPython is Salt's python filter: pprint.pformat of the value.
func filterPython(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	return exec.AsValue(pformat(modelOf(in), 0))
}

// pformat follows pprint.pformat(width=80): dict keys sorted, and a
// container that does not fit on its line gets one item per line.
func pformat(v any, indent int) string {
	v = unwrapModel(v)
	if d, ok := v.(*exec.Dict); ok {
		sorted := &exec.Dict{Pairs: slices.Clone(d.Pairs)}
		slices.SortStableFunc(sorted.Pairs, func(a, b *exec.Pair) int {
			c, err := pyCompare(a.Key, b.Key)
			if err != nil {
				return strings.Compare(pyRepr(a.Key), pyRepr(b.Key))
			}
			return c
		})
		v = sorted
	}
	flat := pyReprSorted(v)
	if indent+len(flat) <= 80 {
		return flat
	}
	pad := strings.Repeat(" ", indent+1)
	switch x := v.(type) {
	case *List, *Tuple:
		items := listItems(exec.AsValue(x))
		open, closing := "[", "]"
		if _, ok := x.(*Tuple); ok {
			open, closing = "(", ")"
		}
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = pformat(it, indent+1)
		}
		if closing == ")" && len(items) == 1 {
			closing = ",)"
		}
		return open + strings.Join(parts, ",\n"+pad) + closing
	case *exec.Dict:
		parts := make([]string, len(x.Pairs))
		for i, p := range x.Pairs {
			k := pyRepr(p.Key)
			parts[i] = k + ": " + pformat(p.Value, indent+1+len(k)+2)
		}
		return "{" + strings.Join(parts, ",\n"+pad) + "}"
	}
	return flat
}

// pyReprSorted is repr with every dict's keys sorted, as pprint shows them.
func pyReprSorted(v any) string {
	v = unwrapModel(v)
	switch x := v.(type) {
	case *exec.Dict:
		pairs := slices.Clone(x.Pairs)
		slices.SortStableFunc(pairs, func(a, b *exec.Pair) int {
			c, err := pyCompare(a.Key, b.Key)
			if err != nil {
				return strings.Compare(pyRepr(a.Key), pyRepr(b.Key))
			}
			return c
		})
		parts := make([]string, len(pairs))
		for i, p := range pairs {
			parts[i] = pyRepr(p.Key) + ": " + pyReprSorted(p.Value)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case *List:
		parts := make([]string, len(*x))
		for i, it := range *x {
			parts[i] = pyReprSorted(it)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *Tuple:
		parts := make([]string, len(*x))
		for i, it := range *x {
			parts[i] = pyReprSorted(it)
		}
		if len(parts) == 1 {
			return "(" + parts[0] + ",)"
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return pyRepr(v)
}

// filterSum is Jinja2's sum: Python's + over the items (ints stay ints,
// one float makes the total a float), from start.
func filterSum(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	attr := ""
	if v, ok := p.KwArgs["attribute"]; ok {
		attr = v.String()
	} else if len(p.Args) > 0 {
		attr = p.Args[0].String()
	}
	var total any = 0
	if v, ok := p.KwArgs["start"]; ok {
		total = modelOf(v)
	} else if len(p.Args) > 1 {
		total = modelOf(p.Args[1])
	}
	for _, it := range iterItems(in) {
		v := unwrapModel(it)
		if attr != "" {
			var ok bool
			if v, ok = attrPath(v, attr); !ok {
				return exec.AsValue(fmt.Errorf("sum: '%s' is undefined", attr))
			}
		}
		var err error
		if total, err = binaryOp(tokens.Addition, "+", total, v); err != nil {
			return exec.AsValue(fmt.Errorf("sum: %w", err))
		}
	}
	return exec.AsValue(total)
}

// filterInt is Jinja2's int: int(value, base) for strings (Python's
// syntax: underscores, spaces, a prefix matching the base), else
// int(float(value)), else the default.
func filterInt(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	def := p.GetKeywordArgument("default", 0)
	if len(p.Args) > 0 {
		def = p.Args[0]
	}
	base := p.GetKeywordArgument("base", 10).Integer()
	if len(p.Args) > 1 {
		base = p.Args[1].Integer()
	}
	switch x := modelOf(in).(type) {
	case bool:
		if x {
			return exec.AsValue(1)
		}
		return exec.AsValue(0)
	case int:
		return exec.AsValue(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return def
		}
		return exec.AsValue(int(x))
	case string:
		if i, ok := pyParseInt(x, base); ok {
			return exec.AsValue(i)
		}
		if f, ok := pyParseFloat(x); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return exec.AsValue(int(f))
		}
	}
	return def
}

func pyParseInt(s string, base int) (int, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	lower := strings.ToLower(s)
	for _, pre := range []struct {
		p string
		b int
	}{{"0x", 16}, {"0o", 8}, {"0b", 2}} {
		if strings.HasPrefix(lower, pre.p) && (base == pre.b || base == 0) {
			s, base = s[2:], pre.b
			break
		}
	}
	if base == 0 {
		if len(s) > 1 && s[0] == '0' && strings.Trim(s, "0_") != "" {
			return 0, false
		}
		base = 10
	}
	if s == "" || strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), base, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		v = -v
	}
	return int(v), true
}

func pyParseFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, "xXpP") {
		return 0, false
	}
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity", "nan":
	default:
		if strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
			return 0, false
		}
		s = strings.ReplaceAll(s, "_", "")
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// filterFloat is Jinja2's float: float(value), else the default.
func filterFloat(_ *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	def := p.GetKeywordArgument("default", 0.0)
	if len(p.Args) > 0 {
		def = p.Args[0]
	}
	switch x := modelOf(in).(type) {
	case bool:
		if x {
			return exec.AsValue(1.0)
		}
		return exec.AsValue(0.0)
	case int:
		return exec.AsValue(float64(x))
	case float64:
		return exec.AsValue(x)
	case string:
		if f, ok := pyParseFloat(x); ok {
			return exec.AsValue(f)
		}
	}
	if _, ok := modelOf(def).(int); ok {
		return exec.AsValue(float64(def.Integer()))
	}
	return def
}

// filterFirstLast is Jinja2's first/last: an empty sequence is undefined.
func filterFirstLast(first bool) exec.FilterFunction {
	return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		if in.IsError() {
			return in
		}
		var items []any
		if s, ok := modelOf(in).(string); ok {
			for _, r := range s {
				items = append(items, string(r))
			}
		} else {
			items = iterItems(in)
		}
		if len(items) == 0 {
			if first {
				return exec.AsValue(fmt.Errorf("No first item, sequence was empty (not found)"))
			}
			return exec.AsValue(fmt.Errorf("No last item, sequence was empty (not found)"))
		}
		if first {
			return exec.AsValue(items[0])
		}
		return exec.AsValue(items[len(items)-1])
	}
}

func filterAbs(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	switch x := modelOf(in).(type) {
	case bool:
		if x {
			return exec.AsValue(1)
		}
		return exec.AsValue(0)
	case int:
		if x < 0 {
			if x == math.MinInt {
				return exec.AsValue(errOverflow)
			}
			return exec.AsValue(-x)
		}
		return exec.AsValue(x)
	case float64:
		return exec.AsValue(math.Abs(x))
	}
	return exec.AsValue(pyErrorf("TypeError: bad operand type for abs(): '%s'", typeName(modelOf(in))))
}

var wordRE = regexp.MustCompile(`\w+`)

// filterWordcount counts \w+ runs, as Jinja2 does.
func filterWordcount(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	return exec.AsValue(len(wordRE.FindAllString(pyStr(in), -1)))
}
