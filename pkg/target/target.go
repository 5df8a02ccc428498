// Package target implements Salt's minion targeting: glob, list, grain,
// grain_pcre, pcre, ipcidr and compound expressions, with the matching
// rules of Salt's own matchers (salt/matchers/*.py) so that targets copied
// from Salt select the same minions. Pillar and nodegroup targeting are not
// implemented and are refused with ErrUnsupported.
//
// A Matcher is immutable after Compile and safe for concurrent use.
package target

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Type is a Salt target type (Salt's tgt_type).
type Type string

const (
	Glob      Type = "glob"
	List      Type = "list"
	Grain     Type = "grain"
	GrainPCRE Type = "grain_pcre"
	PCRE      Type = "pcre"
	IPCIDR    Type = "ipcidr"
	Compound  Type = "compound"
)

// Types lists the supported target types in the order Salt documents them.
var Types = []Type{Glob, PCRE, List, Grain, GrainPCRE, IPCIDR, Compound}

// ErrUnsupported marks a Salt target type or compound engine that brine
// recognises but does not implement (pillar, nodegroup, range).
var ErrUnsupported = errors.New("not supported")

// unsupportedTypes are Salt tgt_type names brine knows but refuses.
var unsupportedTypes = map[string]string{
	"pillar":        "pillar targeting",
	"pillar_pcre":   "pillar targeting",
	"pillar_exact":  "pillar targeting",
	"pillar_target": "pillar targeting",
	"nodegroup":     "nodegroup targeting",
	"range":         "range targeting",
	"data":          "data targeting",
}

// ParseType parses a Salt tgt_type name; "" means glob, as in Salt.
func ParseType(s string) (Type, error) {
	if s == "" {
		return Glob, nil
	}
	for _, t := range Types {
		if string(t) == s {
			return t, nil
		}
	}
	if what, ok := unsupportedTypes[s]; ok {
		return "", fmt.Errorf("target type %q: %s is %w yet", s, what, ErrUnsupported)
	}
	names := make([]string, len(Types))
	for i, t := range Types {
		names[i] = string(t)
	}
	return "", fmt.Errorf("unknown target type %q (want one of %s)", s, strings.Join(names, ", "))
}

// SyntaxError is a target expression that cannot be compiled. Pos is the
// byte offset in Expr where the problem was found.
type SyntaxError struct {
	Expr string
	Type Type
	Pos  int
	Msg  string
	Err  error // the underlying cause (a regexp or CIDR error), if any
}

func (e *SyntaxError) Error() string {
	msg := e.Msg
	if e.Err != nil {
		if msg == "" {
			msg = e.Err.Error()
		} else {
			msg += ": " + e.Err.Error()
		}
	}
	return fmt.Sprintf("%s target %q: at offset %d: %s", e.Type, e.Expr, e.Pos, msg)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Matcher is a compiled target expression.
type Matcher struct {
	expr string
	typ  Type
	root node
}

// Expr returns the expression the matcher was compiled from.
func (m *Matcher) Expr() string { return m.expr }

// Type returns the target type the matcher was compiled for.
func (m *Matcher) Type() Type { return m.typ }

func (m *Matcher) String() string { return string(m.typ) + ":" + m.expr }

// Match reports whether the minion with this id and these grains is
// selected. grains may be nil.
func (m *Matcher) Match(id string, grains map[string]any) bool {
	return m.root.match(id, grains)
}

// Compile parses and fully validates expr as a target of type typ.
func Compile(expr string, typ Type) (*Matcher, error) {
	if typ == "" {
		typ = Glob
	}
	if _, err := ParseType(string(typ)); err != nil {
		return nil, err
	}
	if strings.TrimSpace(expr) == "" {
		return nil, &SyntaxError{Expr: expr, Type: typ, Msg: "empty target expression"}
	}
	var root node
	var err error
	if typ == Compound {
		root, err = parseCompound(expr)
	} else {
		root, err = compileLeaf(typ, expr, ":")
	}
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			if se.Expr == "" {
				se.Expr, se.Type = expr, typ
			}
			return nil, se
		}
		return nil, &SyntaxError{Expr: expr, Type: typ, Err: err}
	}
	return &Matcher{expr: expr, typ: typ, root: root}, nil
}

// CompileList builds a list matcher from ids, for callers that already hold
// a list (Salt accepts a Python list for tgt_type=list).
func CompileList(ids []string) (*Matcher, error) {
	n := newListNode(ids)
	if len(n.ids) == 0 {
		return nil, &SyntaxError{Expr: strings.Join(ids, ","), Type: List, Msg: "no minion ids in list"}
	}
	return &Matcher{expr: strings.Join(n.ids, ","), typ: List, root: n}, nil
}

// compileLeaf compiles one non-compound expression. Errors carry offsets
// relative to expr; the compound parser shifts them.
func compileLeaf(typ Type, expr, delim string) (node, error) {
	switch typ {
	case Glob:
		return &globNode{g: compileGlob(expr)}, nil
	case List:
		n := newListNode(strings.Split(expr, ","))
		if len(n.ids) == 0 {
			return nil, &SyntaxError{Msg: "no minion ids in list"}
		}
		return n, nil
	case PCRE:
		re, err := compileValueRegex(expr, false)
		if err != nil {
			return nil, &SyntaxError{Msg: "invalid regular expression (Go RE2 syntax)", Err: err}
		}
		lit, complete := regexp.MustCompile(expr).LiteralPrefix()
		return &pcreNode{re: re, literal: complete, lit: lit}, nil
	case Grain, GrainPCRE:
		if delim == "" {
			delim = ":"
		}
		g, err := compileGrain(expr, delim, typ == GrainPCRE)
		if err != nil {
			pos := strings.Index(expr, delim) + len(delim)
			if pos < len(delim) {
				pos = len(expr)
			}
			return nil, &SyntaxError{Pos: pos, Err: err}
		}
		return &grainNode{leaf: g}, nil
	case IPCIDR:
		return compileCIDR(expr)
	}
	return nil, fmt.Errorf("target type %q cannot be a leaf", typ)
}

// node is one element of a compiled expression tree.
type node interface {
	match(id string, grains map[string]any) bool
	// candidates narrows the match through an index; see Candidates.
	candidates(ix Index) (cands []Candidate, bounded bool)
	// cost orders the children of an "and" so that cheap, selective
	// lookups run first; costUnbounded nodes give no narrowing at all.
	cost() int
}

const (
	costExact     = iota // a fixed set of ids, no lookup at all
	costIndexed          // one or a few (path, value) index lookups
	costPrefix           // a range scan over ids with a literal prefix
	costUnbounded        // needs every minion checked
)

type globNode struct{ g *glob }

func (n *globNode) match(id string, _ map[string]any) bool { return n.g.match(id) }

type listNode struct {
	ids []string // sorted, deduplicated
	set map[string]struct{}
}

// newListNode trims spaces around each id, which Salt does not do; a space
// can never be part of a minion id that Salt accepts, so "a, b" only
// ever meant "a,b".
func newListNode(raw []string) *listNode {
	n := &listNode{set: map[string]struct{}{}}
	for _, id := range raw {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if _, dup := n.set[id]; dup {
			continue
		}
		n.set[id] = struct{}{}
		n.ids = append(n.ids, id)
	}
	sortStrings(n.ids)
	return n
}

func (n *listNode) match(id string, _ map[string]any) bool {
	_, ok := n.set[id]
	return ok
}

type pcreNode struct {
	re *regexp.Regexp
	// literal is set when the whole regex is a plain string, which then
	// matches every id it prefixes.
	literal bool
	lit     string // that literal ("we0" for "we(0)")
}

func (n *pcreNode) match(id string, _ map[string]any) bool { return n.re.MatchString(id) }

type grainNode struct{ leaf *grainLeaf }

func (n *grainNode) match(_ string, grains map[string]any) bool { return n.leaf.match(grains) }

// cidrNode is Salt's ipcidr matcher: an address is looked for in the
// minion's ipv4 or ipv6 grain (by the target's family), a network must
// contain one of them.
type cidrNode struct {
	addr   netip.Addr
	prefix netip.Prefix
	isNet  bool
	grain  string
}

func compileCIDR(expr string) (node, error) {
	s := strings.TrimSpace(expr)
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.WithZone("")
		return &cidrNode{addr: a, grain: familyGrain(a)}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, &SyntaxError{Msg: "not an IP address or CIDR network", Err: err}
	}
	if p.Masked() != p {
		// Python's ipaddress.ip_network (what Salt calls) refuses this.
		return nil, &SyntaxError{Pos: strings.Index(expr, "/"), Msg: fmt.Sprintf("network has host bits set (did you mean %s?)", p.Masked())}
	}
	return &cidrNode{prefix: p, isNet: true, grain: familyGrain(p.Addr())}, nil
}

func familyGrain(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func (n *cidrNode) match(_ string, grains map[string]any) bool {
	v, ok := grains[n.grain]
	if !ok {
		return false
	}
	l, ok := asList(v)
	if !ok {
		l = []any{v}
	}
	for _, item := range l {
		s, ok := item.(string)
		if !ok {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		a = a.WithZone("")
		if n.isNet {
			if n.prefix.Contains(a) {
				return true
			}
		} else if a == n.addr {
			return true
		}
	}
	return false
}

type andNode struct{ kids []node }

func (n *andNode) match(id string, grains map[string]any) bool {
	for _, k := range n.kids {
		if !k.match(id, grains) {
			return false
		}
	}
	return true
}

type orNode struct{ kids []node }

func (n *orNode) match(id string, grains map[string]any) bool {
	for _, k := range n.kids {
		if k.match(id, grains) {
			return true
		}
	}
	return false
}

type notNode struct{ kid node }

func (n *notNode) match(id string, grains map[string]any) bool { return !n.kid.match(id, grains) }
