package target

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Compound expressions follow salt/matchers/compound_match.py: the
// expression is split on whitespace into words; "and", "or", "not", "("
// and ")" are operators (so parentheses must stand alone, as in Salt);
// a word "X@pattern" goes to engine X; any other word is a glob on the id.
// Salt then eval()s the words as Python, so precedence is Python's:
// not > and > or. Salt inserts "and" before a "not" that follows an
// operand ("web* not G@os:Windows"), and so does this parser.

type word struct {
	text string
	pos  int
}

// splitWords is str.split(): runs of Unicode whitespace separate words.
func splitWords(s string) []word {
	var out []word
	start := -1
	for i, r := range s {
		if unicode.IsSpace(r) {
			if start >= 0 {
				out = append(out, word{s[start:i], start})
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, word{s[start:], start})
	}
	return out
}

type tokKind uint8

const (
	tLeaf tokKind = iota
	tAnd
	tOr
	tNot
	tLParen
	tRParen
)

type ctoken struct {
	kind tokKind
	pos  int
	text string
	leaf node
}

// engines maps a compound prefix letter to its target type; the empty
// entries are engines Salt has and brine refuses.
var engines = map[rune]Type{'G': Grain, 'P': GrainPCRE, 'L': List, 'S': IPCIDR, 'E': PCRE}

var unsupportedEngines = map[rune]string{
	'I': "pillar targeting (I@)",
	'J': "pillar targeting (J@)",
	'N': "nodegroup targeting (N@)",
	'R': "range targeting (R@)",
}

// splitEngine is Salt's TARGET_REX: an engine letter, for G/P/I/J an
// optional one-character delimiter, '@', then a non-empty pattern.
func splitEngine(w string) (engine rune, delim, pattern string, ok bool) {
	e, n := utf8.DecodeRuneInString(w)
	if !strings.ContainsRune("GPIJLNSER", e) || n >= len(w) {
		return 0, "", "", false
	}
	rest := w[n:]
	if strings.ContainsRune("GPIJ", e) {
		d, dn := utf8.DecodeRuneInString(rest)
		if dn < len(rest) && rest[dn] == '@' && len(rest) > dn+1 {
			return e, string(d), rest[dn+1:], true
		}
	}
	if rest[0] == '@' && len(rest) > 1 {
		return e, "", rest[1:], true
	}
	return 0, "", "", false
}

func parseCompound(expr string) (node, error) {
	words := splitWords(expr)
	if len(words) == 0 {
		return nil, &SyntaxError{Msg: "empty target expression"}
	}
	var toks []ctoken
	for _, w := range words {
		t := ctoken{pos: w.pos, text: w.text}
		switch w.text {
		case "and":
			t.kind = tAnd
		case "or":
			t.kind = tOr
		case "not":
			t.kind = tNot
		case "(":
			t.kind = tLParen
		case ")":
			t.kind = tRParen
		default:
			leaf, err := compileWord(w)
			if err != nil {
				return nil, err
			}
			t.kind, t.leaf = tLeaf, leaf
		}
		if t.kind == tNot && len(toks) > 0 {
			switch toks[len(toks)-1].kind {
			case tLeaf, tRParen:
				toks = append(toks, ctoken{kind: tAnd, pos: w.pos, text: "and"})
			case tNot:
				// Salt inserts "and" here too, producing "not and not",
				// which its eval rejects; say so instead of matching nothing.
				return nil, &SyntaxError{Pos: w.pos, Msg: `"not not" is not valid in a Salt compound target`}
			}
		}
		toks = append(toks, t)
	}
	p := &cparser{toks: toks, end: len(expr)}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		if t.kind == tRParen {
			return nil, &SyntaxError{Pos: t.pos, Msg: `unmatched ")"`}
		}
		return nil, &SyntaxError{Pos: t.pos, Msg: fmt.Sprintf(`expected "and", "or" or ")" before %q`, t.text)}
	}
	return n, nil
}

// compileWord compiles one operand word.
func compileWord(w word) (node, error) {
	shift := func(err error, at int) error {
		if se, ok := err.(*SyntaxError); ok {
			se.Pos += at
			if se.Msg == "" && se.Err != nil {
				se.Msg = fmt.Sprintf("in %q", w.text)
			} else {
				se.Msg = fmt.Sprintf("in %q: %s", w.text, se.Msg)
			}
			return se
		}
		return &SyntaxError{Pos: at, Msg: fmt.Sprintf("in %q", w.text), Err: err}
	}
	if e, delim, pattern, ok := splitEngine(w.text); ok {
		at := w.pos + len(w.text) - len(pattern)
		if what, bad := unsupportedEngines[e]; bad {
			return nil, &SyntaxError{Pos: w.pos, Msg: fmt.Sprintf("%q: %s is not supported yet", w.text, what), Err: ErrUnsupported}
		}
		typ := engines[e]
		if typ == Grain || typ == List || typ == IPCIDR {
			if err := strayParen(w); err != nil {
				return nil, err
			}
		}
		leaf, err := compileLeaf(typ, pattern, delim)
		if err != nil {
			return nil, shift(err, at)
		}
		return leaf, nil
	}
	if r, _ := utf8.DecodeRuneInString(w.text); len(w.text) <= 3 && strings.ContainsRune("GPIJLNSER", r) && strings.HasSuffix(w.text, "@") {
		return nil, &SyntaxError{Pos: w.pos, Msg: fmt.Sprintf("%q has no pattern after the '@'", w.text)}
	}
	if err := strayParen(w); err != nil {
		return nil, err
	}
	return &globNode{g: compileGlob(w.text)}, nil
}

// strayParen refuses "(web*" and "G@os:Debian)": Salt needs parentheses as
// separate words, and a glued one silently makes its eval fail (no minion
// matches), which is never what was meant.
func strayParen(w word) error {
	if strings.HasPrefix(w.text, "(") {
		return &SyntaxError{Pos: w.pos, Msg: fmt.Sprintf(`"(" must be separated from %q by a space`, w.text[1:])}
	}
	if strings.HasSuffix(w.text, ")") {
		return &SyntaxError{Pos: w.pos + len(w.text) - 1, Msg: fmt.Sprintf(`")" must be separated from %q by a space`, strings.TrimSuffix(w.text, ")"))}
	}
	return nil
}

type cparser struct {
	toks []ctoken
	i    int
	end  int
}

func (p *cparser) peek() (ctoken, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return ctoken{}, false
}

func (p *cparser) parseOr() (node, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	kids := []node{first}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tOr {
			break
		}
		p.i++
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &orNode{kids: flatten[*orNode](kids)}, nil
}

func (p *cparser) parseAnd() (node, error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	kids := []node{first}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tAnd {
			break
		}
		p.i++
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &andNode{kids: flatten[*andNode](kids)}, nil
}

func (p *cparser) parseUnary() (node, error) {
	t, ok := p.peek()
	if ok && t.kind == tNot {
		p.i++
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &notNode{kid: n}, nil
	}
	return p.parsePrimary()
}

func (p *cparser) parsePrimary() (node, error) {
	t, ok := p.peek()
	if !ok {
		prev := p.toks[len(p.toks)-1]
		return nil, &SyntaxError{Pos: p.end, Msg: fmt.Sprintf("expression ends after %q; a target is missing", prev.text)}
	}
	switch t.kind {
	case tLeaf:
		p.i++
		return t.leaf, nil
	case tLParen:
		p.i++
		if nt, ok := p.peek(); ok && (nt.kind == tAnd || nt.kind == tOr) {
			return nil, &SyntaxError{Pos: nt.pos, Msg: fmt.Sprintf(`%q cannot follow "("`, nt.text)}
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		ct, ok := p.peek()
		if !ok {
			return nil, &SyntaxError{Pos: t.pos, Msg: `unclosed "("`}
		}
		if ct.kind != tRParen {
			return nil, &SyntaxError{Pos: ct.pos, Msg: fmt.Sprintf(`expected "and", "or" or ")" before %q`, ct.text)}
		}
		p.i++
		return n, nil
	case tRParen:
		return nil, &SyntaxError{Pos: t.pos, Msg: `")" where a target was expected`}
	default:
		if p.i == 0 {
			return nil, &SyntaxError{Pos: t.pos, Msg: fmt.Sprintf("expression cannot start with %q", t.text)}
		}
		return nil, &SyntaxError{Pos: t.pos, Msg: fmt.Sprintf("%q where a target was expected", t.text)}
	}
}

// flatten merges nested nodes of the same operator: "a and (b and c)"
// becomes one and-node with three children.
func flatten[T interface {
	*andNode | *orNode
	node
}](kids []node) []node {
	var out []node
	for _, k := range kids {
		if same, ok := k.(T); ok {
			switch s := any(same).(type) {
			case *andNode:
				out = append(out, s.kids...)
			case *orNode:
				out = append(out, s.kids...)
			}
			continue
		}
		out = append(out, k)
	}
	return out
}
