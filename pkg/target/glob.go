package target

import (
	"strings"
	"unicode/utf8"
)

// glob is a compiled shell pattern with the exact semantics of Python's
// fnmatch.fnmatchcase (which is what Salt calls on POSIX): '*' matches any
// run of characters including '/' and newlines, '?' one character, '[...]'
// a set with '!' for negation and no backslash escaping. A '[' with no
// closing ']' is a literal. It is matched directly rather than through
// regexp because the registry runs it over every minion id.
type glob struct {
	toks []gtok
	// literal is set when the pattern has no special characters at all;
	// then matching is string equality.
	literal bool
	// prefix is the literal text every match must start with.
	prefix string
}

type gkind uint8

const (
	gLit gkind = iota
	gAny
	gStar
	gSet
)

type gtok struct {
	kind gkind
	lit  string
	set  *runeSet
}

// runeSet is a parsed character class.
type runeSet struct {
	negate bool
	never  bool // Python's "(?!)": an empty class matches nothing
	ranges [][2]rune
}

func (s *runeSet) has(r rune) bool {
	if s.never {
		return false
	}
	in := false
	for _, rg := range s.ranges {
		if r >= rg[0] && r <= rg[1] {
			in = true
			break
		}
	}
	return in != s.negate
}

// hasGlobMeta reports whether s contains a character that makes fnmatch
// do more than compare for equality.
func hasGlobMeta(s string) bool {
	return strings.ContainsAny(s, "*?[")
}

func compileGlob(pat string) *glob {
	g := &glob{}
	p := []rune(pat)
	n := len(p)
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			g.toks = append(g.toks, gtok{kind: gLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < n; {
		c := p[i]
		i++
		switch c {
		case '*':
			flush()
			if len(g.toks) == 0 || g.toks[len(g.toks)-1].kind != gStar {
				g.toks = append(g.toks, gtok{kind: gStar})
			}
		case '?':
			flush()
			g.toks = append(g.toks, gtok{kind: gAny})
		case '[':
			j := i
			if j < n && p[j] == '!' {
				j++
			}
			if j < n && p[j] == ']' {
				j++
			}
			for j < n && p[j] != ']' {
				j++
			}
			if j >= n {
				lit.WriteRune('[')
				continue
			}
			flush()
			g.toks = append(g.toks, gtok{kind: gSet, set: translateSet(p, i, j)})
			i = j + 1
		default:
			lit.WriteRune(c)
		}
	}
	flush()
	switch {
	case len(g.toks) == 0:
		g.literal = true
	case len(g.toks) == 1 && g.toks[0].kind == gLit:
		g.literal = true
		g.prefix = g.toks[0].lit
	case g.toks[0].kind == gLit:
		g.prefix = g.toks[0].lit
	}
	return g
}

// translateSet follows fnmatch.translate (CPython 3.9+) for the class
// p[i:j] (between '[' and ']') literally, building the same regex class
// text Python builds, then parses that text the way sre does. Doing it in
// two steps keeps Python's quirks (empty ranges dropped, a '!' that ends up
// first after a dropped range negating the set) without re-deriving them.
func translateSet(p []rune, i, j int) *runeSet {
	stuff := p[i:j]
	var class []rune
	if !containsRune(stuff, '-') {
		class = escapeClass(stuff, false)
	} else {
		var chunks [][]rune
		k := i + 1
		if p[i] == '!' {
			k = i + 2
		}
		for {
			k = indexRune(p, '-', k, j)
			if k < 0 {
				break
			}
			chunks = append(chunks, append([]rune(nil), p[i:k]...))
			i = k + 1
			k += 3
		}
		chunk := append([]rune(nil), p[i:j]...)
		if len(chunk) > 0 {
			chunks = append(chunks, chunk)
		} else {
			chunks[len(chunks)-1] = append(chunks[len(chunks)-1], '-')
		}
		for k := len(chunks) - 1; k > 0; k-- {
			prev, cur := chunks[k-1], chunks[k]
			if len(prev) == 0 || len(cur) == 0 {
				continue
			}
			if prev[len(prev)-1] > cur[0] {
				merged := append(append([]rune(nil), prev[:len(prev)-1]...), cur[1:]...)
				chunks[k-1] = merged
				chunks = append(chunks[:k], chunks[k+1:]...)
			}
		}
		for n, c := range chunks {
			if n > 0 {
				class = append(class, '-')
			}
			class = append(class, escapeClass(c, true)...)
		}
	}
	if len(class) == 0 {
		return &runeSet{never: true}
	}
	if len(class) == 1 && class[0] == '!' {
		return &runeSet{negate: true} // Python: '.', any one character
	}
	set := &runeSet{}
	switch class[0] {
	case '!':
		set.negate = true
		class = class[1:]
	case '^', '[':
		class = append([]rune{'\\'}, class...)
	}
	parseClass(set, class)
	return set
}

// escapeClass escapes what fnmatch.translate escapes inside a class:
// backslashes, hyphens (only in the chunked form) and the set operators
// & ~ |.
func escapeClass(s []rune, hyphen bool) []rune {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\\' || (hyphen && r == '-') || r == '&' || r == '~' || r == '|' {
			out = append(out, '\\')
		}
		out = append(out, r)
	}
	return out
}

// parseClass reads a regex class body as sre_parse does for the subset
// translateSet produces: escaped literals, plain literals and a-b ranges.
func parseClass(set *runeSet, c []rune) {
	next := func(i int) (rune, int) {
		if c[i] == '\\' && i+1 < len(c) {
			return c[i+1], i + 2
		}
		return c[i], i + 1
	}
	for i := 0; i < len(c); {
		lo, ni := next(i)
		if ni < len(c) && c[ni] == '-' && ni+1 < len(c) {
			hi, nj := next(ni + 1)
			if hi >= lo {
				set.ranges = append(set.ranges, [2]rune{lo, hi})
			}
			i = nj
			continue
		}
		if ni < len(c) && c[ni] == '-' { // trailing '-' is a literal
			set.ranges = append(set.ranges, [2]rune{lo, lo}, [2]rune{'-', '-'})
			i = ni + 1
			continue
		}
		set.ranges = append(set.ranges, [2]rune{lo, lo})
		i = ni
	}
}

func containsRune(s []rune, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

func indexRune(s []rune, r rune, from, to int) int {
	for k := from; k < to && k < len(s); k++ {
		if s[k] == r {
			return k
		}
	}
	return -1
}

// match reports whether name matches the whole pattern. It is the classic
// single-backtrack-point wildcard algorithm: every token other than '*'
// matches a fixed number of characters, so on a mismatch only the most
// recent '*' needs to swallow one more character.
func (g *glob) match(name string) bool {
	if g.literal {
		return name == g.prefix
	}
	if !strings.HasPrefix(name, g.prefix) {
		return false
	}
	toks, s := g.toks, name
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for ti < len(toks) || si < len(s) {
		if ti < len(toks) {
			t := &toks[ti]
			switch t.kind {
			case gStar:
				starTi, starSi = ti, si
				ti++
				continue
			case gLit:
				if strings.HasPrefix(s[si:], t.lit) {
					si += len(t.lit)
					ti++
					continue
				}
			case gAny:
				if si < len(s) {
					_, w := utf8.DecodeRuneInString(s[si:])
					si += w
					ti++
					continue
				}
			case gSet:
				if si < len(s) {
					r, w := utf8.DecodeRuneInString(s[si:])
					if t.set.has(r) {
						si += w
						ti++
						continue
					}
				}
			}
		}
		if starTi >= 0 && starSi < len(s) {
			_, w := utf8.DecodeRuneInString(s[starSi:])
			starSi += w
			si = starSi
			ti = starTi + 1
			continue
		}
		return false
	}
	return true
}
