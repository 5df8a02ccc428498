package target

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// This file ports Salt's salt.utils.data.subdict_match and
// traverse_dict_and_list, which are what -G / G@ and -P / P@ run on a
// minion's grains. The behaviours users lean on, kept here:
//   - every split of "a:b:c" is tried, longest key first ("a:b" = "c",
//     then "a" = "b:c"), so values containing the delimiter (IPv6
//     addresses, URLs) still match;
//   - the value side is compared lower-cased on both sides;
//   - a list grain matches if any element matches;
//   - a key naming a dict matches when the value names one of its keys
//     (G@ip_interfaces:eth0 matches minions having an eth0);
//   - a list met on the way to a key is searched for a dict holding that
//     key, and a numeric part indexes into a list;
//   - a key of "*" searches every value ("*:value").

// valueMatcher is one compiled value pattern: a lower-cased glob, or a
// case-insensitive regex anchored at the start like Python's re.match.
type valueMatcher interface {
	matchValue(lowered string) bool
}

type globValue struct{ g *glob }

func (v globValue) matchValue(s string) bool { return v.g.match(s) }

type regexValue struct{ re *regexp.Regexp }

func (v regexValue) matchValue(s string) bool { return v.re.MatchString(s) }

// neverValue stands for a regex that does not compile: Salt logs it and
// treats it as no match.
type neverValue struct{}

func (neverValue) matchValue(string) bool { return false }

// compileValueRegex compiles pattern for re.match semantics. The pattern is
// first compiled alone so that text like "a)|(b" cannot escape the anchor
// the wrapper adds.
func compileValueRegex(pattern string, fold bool) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(pattern); err != nil {
		return nil, err
	}
	prefix := `^(?:`
	if fold {
		prefix = `(?i)^(?:`
	}
	return regexp.Compile(prefix + pattern + `)`)
}

// grainLeaf is a compiled G@ or P@ expression.
type grainLeaf struct {
	expr  string
	delim string
	regex bool
	parts []string
	// splits are the top-level (key, pattern) pairs, longest key first,
	// compiled once. Deeper recursion (dict values) goes through cache.
	splits []grainSplit
	mu     sync.Mutex
	cache  map[string]valueMatcher
}

type grainSplit struct {
	keyParts []string // nil means the "*" key: the whole grains dict
	rest     string   // the pattern text, as Salt passes it down
	pat      valueMatcher
}

func compileGrain(expr, delim string, regex bool) (*grainLeaf, error) {
	if delim == "" {
		delim = ":"
	}
	parts := strings.Split(expr, delim)
	if len(parts) < 2 {
		return nil, fmt.Errorf("%q has no %q: a grain target is key%svalue", expr, delim, delim)
	}
	// Salt has no such limits; they bound the cost of one Match, which
	// grows polynomially with the parts and steeply with "*" parts.
	if len(parts) > maxGrainParts {
		return nil, fmt.Errorf("%q has %d %q-separated parts; at most %d are allowed", expr, len(parts), delim, maxGrainParts)
	}
	if stars := countStars(parts); stars > maxGrainStars {
		return nil, fmt.Errorf("%q has %d \"*\" key parts; at most %d are allowed", expr, stars, maxGrainStars)
	}
	g := &grainLeaf{expr: expr, delim: delim, regex: regex, parts: parts, cache: map[string]valueMatcher{}}
	var firstErr error
	compiled := 0
	for idx := len(parts) - 1; idx > 0; idx-- {
		key := strings.Join(parts[:idx], delim)
		s := grainSplit{keyParts: parts[:idx], rest: strings.Join(parts[idx:], delim)}
		patText := s.rest
		if key == "*" {
			if wildcardLoops(expr) {
				continue
			}
			s.keyParts = nil
			s.rest = expr
			patText = expr[2:] // what dictMatch will match values with
		}
		pat, err := g.compilePattern(patText)
		if err != nil {
			if firstErr == nil || idx == 1 {
				firstErr = err
			}
			pat = neverValue{}
		} else {
			compiled++
		}
		s.pat = pat
		g.splits = append(g.splits, s)
	}
	if compiled == 0 {
		if firstErr == nil {
			return nil, fmt.Errorf("%q can never match: a \"*\" key only works with the ':' delimiter", expr)
		}
		return nil, firstErr
	}
	return g, nil
}

const (
	maxGrainParts = 32
	maxGrainStars = 3
)

func countStars(parts []string) int {
	n := 0
	for _, p := range parts[:len(parts)-1] {
		if p == "*" {
			n++
		}
	}
	return n
}

func (g *grainLeaf) compilePattern(p string) (valueMatcher, error) {
	if g.regex {
		// Salt lower-cases both the regex and the value. Lower-casing a
		// regex changes \S, \W, \D into their opposites, so fold case in
		// the engine instead; for letters the result is the same.
		re, err := compileValueRegex(p, true)
		if err != nil {
			return nil, fmt.Errorf("regex %q: %w", p, err)
		}
		return regexValue{re}, nil
	}
	return globValue{compileGlob(strings.ToLower(p))}, nil
}

// pattern returns the compiled matcher for a pattern met while recursing.
func (g *grainLeaf) pattern(p string) valueMatcher {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.cache[p]; ok {
		return m
	}
	m, err := g.compilePattern(p)
	if err != nil {
		m = neverValue{}
	}
	g.cache[p] = m
	return m
}

// grainEval is one evaluation of a grain leaf. Its memo of dictMatch
// results keeps "*:*:*:...:x" polynomial: without it the wildcard
// recursion revisits the same (dict, pattern) pairs exponentially often,
// as Salt's does, and a long expression could stall the master.
type grainEval struct {
	g    *grainLeaf
	memo map[memoKey]bool
}

type memoKey struct {
	dict    uintptr
	pattern string
}

func (g *grainLeaf) match(grains map[string]any) bool {
	if grains == nil {
		return false
	}
	e := &grainEval{g: g}
	for i := range g.splits {
		s := &g.splits[i]
		var node any
		if s.keyParts == nil {
			node = grains
		} else {
			var ok bool
			node, ok = traverse(grains, s.keyParts)
			if !ok {
				continue
			}
		}
		if e.matchNode(node, s.rest, s.pat) {
			return true
		}
	}
	return false
}

// subdictMatch is salt.utils.data.subdict_match for a pattern met while
// recursing into a dict value.
func (e *grainEval) subdictMatch(data any, expr string) bool {
	parts := strings.Split(expr, e.g.delim)
	if len(parts) < 2 {
		return false
	}
	for idx := len(parts) - 1; idx > 0; idx-- {
		key := strings.Join(parts[:idx], e.g.delim)
		var node any
		rest := expr
		if key == "*" {
			if wildcardLoops(expr) {
				continue
			}
			node = data
		} else {
			rest = strings.Join(parts[idx:], e.g.delim)
			var ok bool
			node, ok = traverse(data, parts[:idx])
			if !ok {
				continue
			}
		}
		if e.matchNode(node, rest, e.g.pattern(rest)) {
			return true
		}
	}
	return false
}

// wildcardLoops reports a "*" key whose pattern does not start with "*:".
// That happens only with a custom delimiter ("*;x"), and Salt then recurses
// on the same pattern until Python's RecursionError; here it just does not
// match.
func wildcardLoops(expr string) bool { return !strings.HasPrefix(expr, "*:") }

// matchNode is the body of subdict_match's loop for one split.
func (e *grainEval) matchNode(node any, rest string, pat valueMatcher) bool {
	if m, ok := asMap(node); ok {
		if len(m) == 0 { // Salt: `if match == {}: continue`
			return false
		}
		return e.dictMatch(m, rest)
	}
	if l, ok := asList(node); ok {
		for _, member := range l {
			if md, ok := asMap(member); ok && e.dictMatch(md, rest) {
				return true
			}
			if matchScalar(member, pat) {
				return true
			}
		}
		return false
	}
	return matchScalar(node, pat)
}

// dictMatch is subdict_match's inner _dict_match.
func (e *grainEval) dictMatch(target map[string]any, pattern string) bool {
	k := memoKey{reflect.ValueOf(target).Pointer(), pattern}
	if r, ok := e.memo[k]; ok {
		return r
	}
	r := e.dictMatchUncached(target, pattern)
	if e.memo == nil {
		e.memo = map[memoKey]bool{}
	}
	e.memo[k] = r
	return r
}

func (e *grainEval) dictMatchUncached(target map[string]any, pattern string) bool {
	wildcard := strings.HasPrefix(pattern, "*:")
	if wildcard {
		pattern = pattern[2:]
	}
	if pattern == "*" {
		return true
	}
	if _, ok := target[pattern]; ok {
		return true
	}
	if e.subdictMatch(target, pattern) {
		return true
	}
	if wildcard {
		pat := e.g.pattern(pattern)
		for _, v := range target {
			if sub, ok := asMap(v); ok {
				if e.dictMatch(sub, pattern) {
					return true
				}
			} else if l, ok := asList(v); ok {
				for _, item := range l {
					if matchScalar(item, pat) {
						return true
					}
				}
			} else if matchScalar(v, pat) {
				return true
			}
		}
	}
	return false
}

func matchScalar(v any, pat valueMatcher) bool {
	s, ok := ValueString(v)
	if !ok {
		return false
	}
	return pat.matchValue(strings.ToLower(s))
}

// traverse is salt.utils.data.traverse_dict_and_list with the key already
// split. ok is false where Salt returns its default.
func traverse(data any, keys []string) (any, bool) {
	ptr := data
	for _, each := range keys {
		if l, ok := asList(ptr); ok {
			idx, numeric := pythonInt(each)
			found := false
			if !numeric {
				for _, member := range l {
					if md, ok := asMap(member); ok {
						if v, ok := md[each]; ok {
							ptr, found = v, true
							break
						}
					}
				}
			} else {
				// Salt first tries the number as a key of embedded dicts;
				// grain dicts have string keys only, so that never hits.
				if idx < 0 {
					idx += int64(len(l))
				}
				if idx >= 0 && idx < int64(len(l)) {
					ptr, found = l[idx], true
				}
			}
			if !found {
				return nil, false
			}
			continue
		}
		m, ok := asMap(ptr)
		if !ok {
			return nil, false
		}
		v, ok := m[each]
		if !ok {
			return nil, false
		}
		ptr = v
	}
	return ptr, true
}

// pythonInt reports whether Python's int(s) would accept s, and its value.
// Salt uses that to decide whether a key part indexes a list.
func pythonInt(s string) (int64, bool) {
	t := strings.TrimFunc(s, unicode.IsSpace)
	if t == "" {
		return 0, false
	}
	neg := false
	if t[0] == '+' || t[0] == '-' {
		neg = t[0] == '-'
		t = t[1:]
	}
	if t == "" {
		return 0, false
	}
	var n int64
	prevDigit := false
	for _, r := range t {
		if r == '_' {
			if !prevDigit {
				return 0, false
			}
			prevDigit = false
			continue
		}
		if !unicode.IsDigit(r) {
			return 0, false
		}
		d := int64(r - '0')
		if r > '9' { // a non-ASCII decimal digit
			d = int64(digitValue(r))
		}
		if n < math.MaxInt64/10 {
			n = n*10 + d
		}
		prevDigit = true
	}
	if !prevDigit {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// digitValue finds the value of a Unicode decimal digit: digits come in
// contiguous runs of ten starting at a zero.
func digitValue(r rune) int {
	for v := 0; v < 10; v++ {
		if !unicode.IsDigit(r - rune(v)) {
			return v - 1
		}
	}
	return 9
}

// ValueString is the string a grain value is compared as: Python's str(v)
// except that integral floats print without ".0", because grains that
// cross the wire as JSON arrive as float64 and `G@num_cpus:4` must keep
// matching. ok is false for dicts and lists, which never equal a pattern.
func ValueString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case nil:
		return "None", true
	case int:
		return strconv.FormatInt(int64(x), 10), true
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case uint8:
		return strconv.FormatUint(uint64(x), 10), true
	case uint16:
		return strconv.FormatUint(uint64(x), 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float32:
		return formatFloat(float64(x)), true
	case float64:
		return formatFloat(x), true
	case json.Number:
		return string(x), true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), true
	case reflect.Bool:
		return ValueString(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		return formatFloat(rv.Float()), true
	}
	return "", false
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case f == math.Trunc(f) && math.Abs(f) < 1e16:
		return strconv.FormatFloat(f, 'f', -1, 64)
	case math.Abs(f) >= 1e-4 && math.Abs(f) < 1e16:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'e', -1, 64)
}

// asMap returns v as a string-keyed map when it is one.
func asMap(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return m, true
	case nil, string, bool, float64, int, int64, []any, []string:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	m := make(map[string]any, rv.Len())
	it := rv.MapRange()
	for it.Next() {
		m[it.Key().String()] = it.Value().Interface()
	}
	return m, true
}

// asList returns v as a list when it is a slice or array (but not bytes,
// which Python would show as a bytes scalar).
func asList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		l := make([]any, len(x))
		for i, s := range x {
			l[i] = s
		}
		return l, true
	case nil, string, bool, float64, int, int64, map[string]any:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if (rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array) || rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, false
	}
	l := make([]any, rv.Len())
	for i := range l {
		l[i] = rv.Index(i).Interface()
	}
	return l, true
}
