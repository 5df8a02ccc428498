package target_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/target"
)

func TestParseType(t *testing.T) {
	tests := []struct {
		in      string
		want    target.Type
		wantErr string
		unsupp  bool
	}{
		{in: "", want: target.Glob},
		{in: "glob", want: target.Glob},
		{in: "list", want: target.List},
		{in: "grain", want: target.Grain},
		{in: "grain_pcre", want: target.GrainPCRE},
		{in: "pcre", want: target.PCRE},
		{in: "ipcidr", want: target.IPCIDR},
		{in: "compound", want: target.Compound},
		{in: "pillar", wantErr: `"pillar": pillar targeting is not supported`, unsupp: true},
		{in: "nodegroup", wantErr: "nodegroup targeting is not supported", unsupp: true},
		{in: "Glob", wantErr: `unknown target type "Glob"`},
		{in: "grains", wantErr: `unknown target type "grains" (want one of glob, pcre, list`},
	}
	for _, tt := range tests {
		got, err := target.ParseType(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseType(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			if errors.Is(err, target.ErrUnsupported) != tt.unsupp {
				t.Errorf("ParseType(%q): errors.Is(ErrUnsupported) = %v", tt.in, !tt.unsupp)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseType(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

var web01 = map[string]any{
	"os":        "Debian",
	"osrelease": "12",
	"num_cpus":  float64(4),
	"virtual":   true,
	"roles":     []any{"web", "mongodb_server"},
	"env":       "prod",
	"ipv4":      []any{"127.0.0.1", "198.18.0.5"},
	"ipv6":      []any{"::1", "2001:db8::5"},
	"ip_interfaces": map[string]any{
		"lo":   []any{"127.0.0.1", "::1"},
		"eth0": []any{"198.18.0.5", "2001:db8::5"},
	},
	"disks":   []any{map[string]any{"name": "sda"}, map[string]any{"name": "sdb"}},
	"selinux": map[string]any{"enabled": false},
}

var db02 = map[string]any{
	"os":    "Ubuntu",
	"roles": "db",
	"env":   "staging",
	"ipv4":  []string{"10.1.2.3"},
}

func TestMatch(t *testing.T) {
	type minion struct {
		id     string
		grains map[string]any
	}
	w, d := minion{"web-01", web01}, minion{"db-02", db02}
	tests := []struct {
		typ   target.Type
		expr  string
		match []minion
		miss  []minion
	}{
		{target.Glob, "*", []minion{w, d}, nil},
		{target.Glob, "web-*", []minion{w}, []minion{d}},
		{target.Glob, "web-0?", []minion{w}, []minion{d}},
		{target.Glob, "[wx]eb-01", []minion{w}, []minion{d}},
		{target.Glob, "[!w]*", []minion{d}, []minion{w}},
		{target.Glob, "WEB-01", nil, []minion{w}}, // ids are case-sensitive, as in Salt
		{target.List, "web-01,db-02", []minion{w, d}, nil},
		{target.List, "web-01, db-09", []minion{w}, []minion{d}},
		{target.List, "web", nil, []minion{w}},
		{target.PCRE, "web", []minion{w}, []minion{d}}, // re.match: anchored at the start
		{target.PCRE, "eb-01", nil, []minion{w}},       // ...so not a search
		{target.PCRE, "(web|db)-0[12]$", []minion{w, d}, nil},
		{target.Grain, "os:Debian", []minion{w}, []minion{d}},
		{target.Grain, "os:debian", []minion{w}, []minion{d}}, // values compare case-insensitively
		{target.Grain, "os:Deb*", []minion{w}, []minion{d}},
		{target.Grain, "roles:web", []minion{w}, []minion{d}},
		{target.Grain, "roles:db", []minion{d}, []minion{w}}, // a string grain
		{target.Grain, "roles:mongo*", []minion{w}, []minion{d}},
		{target.Grain, "num_cpus:4", []minion{w}, []minion{d}},
		{target.Grain, "virtual:true", []minion{w}, []minion{d}},
		{target.Grain, "ip_interfaces:eth0:198.18.0.5", []minion{w}, []minion{d}},
		{target.Grain, "ip_interfaces:eth0", []minion{w}, []minion{d}}, // key exists
		{target.Grain, "ipv6:2001:db8::5", []minion{w}, []minion{d}},   // value holds the delimiter
		{target.Grain, "disks:name:sdb", []minion{w}, nil},             // list of dicts
		{target.Grain, "disks:1:name:sdb", []minion{w}, nil},           // numeric index
		{target.Grain, "disks:0:name:sdb", nil, []minion{w}},
		{target.Grain, "selinux:enabled:False", []minion{w}, nil},
		{target.Grain, "*:staging", []minion{d}, []minion{w}},
		{target.Grain, "nope:x", nil, []minion{w, d}},
		{target.GrainPCRE, "os:deb", []minion{w}, []minion{d}},
		{target.GrainPCRE, "os:(ubuntu|centos)$", []minion{d}, []minion{w}},
		{target.GrainPCRE, "roles:mongo.*_server", []minion{w}, nil},
		{target.IPCIDR, "198.18.0.0/24", []minion{w}, []minion{d}},
		{target.IPCIDR, "198.18.0.5", []minion{w}, []minion{d}},
		{target.IPCIDR, "10.0.0.0/8", []minion{d}, []minion{w}},
		{target.IPCIDR, "2001:db8::/32", []minion{w}, []minion{d}},
		{target.IPCIDR, "::1", []minion{w}, []minion{d}},
		{target.Compound, "web* and G@os:Debian", []minion{w}, []minion{d}},
		{target.Compound, "G@roles:web or L@db-02", []minion{w, d}, nil},
		{target.Compound, "E@web.* or S@10.1.0.0/16", []minion{w, d}, nil},
		{target.Compound, "P@os:ubu and not G@env:prod", []minion{d}, []minion{w}},
		{target.Compound, "G;@ip_interfaces;eth0;198.18.0.5", []minion{w}, []minion{d}},
		{target.Compound, "G%@ipv6%2001:db8::5", []minion{w}, nil},
		{target.Compound, "not web-01", []minion{d}, []minion{w}},
		{target.Compound, "* not G@os:Ubuntu", []minion{w}, []minion{d}}, // Salt inserts "and"
		{target.Compound, "( web* ) not G@os:Debian", nil, []minion{w, d}},
	}
	for _, tt := range tests {
		m, err := target.Compile(tt.expr, tt.typ)
		if err != nil {
			t.Errorf("Compile(%q, %s): %v", tt.expr, tt.typ, err)
			continue
		}
		for _, mn := range tt.match {
			if !m.Match(mn.id, mn.grains) {
				t.Errorf("%s %q should match %s", tt.typ, tt.expr, mn.id)
			}
		}
		for _, mn := range tt.miss {
			if m.Match(mn.id, mn.grains) {
				t.Errorf("%s %q should not match %s", tt.typ, tt.expr, mn.id)
			}
		}
	}
}

// TestCompoundPrecedence evaluates each expression on minions whose grains
// a, b, c are set to every combination and compares with Python's
// precedence (not > and > or), written out as Go.
func TestCompoundPrecedence(t *testing.T) {
	tests := []struct {
		expr string
		want func(a, b, c bool) bool
	}{
		{"G@a:1 or G@b:1 and G@c:1", func(a, b, c bool) bool { return a || (b && c) }},
		{"G@a:1 and G@b:1 or G@c:1", func(a, b, c bool) bool { return (a && b) || c }},
		{"( G@a:1 or G@b:1 ) and G@c:1", func(a, b, c bool) bool { return (a || b) && c }},
		{"not G@a:1 and G@b:1", func(a, b, c bool) bool { return !a && b }},
		{"not G@a:1 or G@b:1", func(a, b, c bool) bool { return !a || b }},
		{"not ( G@a:1 or G@b:1 ) and G@c:1", func(a, b, c bool) bool { return !(a || b) && c }},
		{"G@a:1 and not G@b:1 or not G@c:1", func(a, b, c bool) bool { return (a && !b) || !c }},
		{"G@a:1 not G@b:1", func(a, b, c bool) bool { return a && !b }},
		{"G@a:1 or G@b:1 not G@c:1", func(a, b, c bool) bool { return a || (b && !c) }},
		{"( ( G@a:1 ) ) or ( G@b:1 and ( G@c:1 or G@a:1 ) )", func(a, b, c bool) bool { return a || (b && (c || a)) }},
		{"not G@a:1 and not G@b:1 and not G@c:1", func(a, b, c bool) bool { return !a && !b && !c }},
	}
	bit := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	for _, tt := range tests {
		m, err := target.Compile(tt.expr, target.Compound)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.expr, err)
		}
		for i := range 8 {
			a, b, c := i&1 != 0, i&2 != 0, i&4 != 0
			g := map[string]any{"a": bit(a), "b": bit(b), "c": bit(c)}
			if got, want := m.Match("m", g), tt.want(a, b, c); got != want {
				t.Errorf("%q with a=%v b=%v c=%v: got %v, want %v", tt.expr, a, b, c, got, want)
			}
		}
	}
	// "not G@x:y and web*" on the id side too: not binds to G@x:y only.
	m, err := target.Compile("not G@x:y and web*", target.Compound)
	if err != nil {
		t.Fatal(err)
	}
	if m.Match("db-1", map[string]any{"x": "z"}) {
		t.Error(`"not G@x:y and web*" matched db-1: parsed as not (x and web*)`)
	}
	if !m.Match("web-1", map[string]any{"x": "z"}) || m.Match("web-1", map[string]any{"x": "y"}) {
		t.Error(`"not G@x:y and web*" wrong on web-1`)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		typ    target.Type
		expr   string
		pos    int
		msg    string
		unsupp bool
	}{
		{target.Compound, "", 0, "empty target expression", false},
		{target.Glob, "   ", 0, "empty target expression", false},
		{target.Compound, "and web*", 0, `cannot start with "and"`, false},
		{target.Compound, "web* and", 8, `ends after "and"`, false},
		{target.Compound, "web* or ( db*", 8, `unclosed "("`, false},
		{target.Compound, "web* )", 5, `unmatched ")"`, false},
		{target.Compound, "( and web* )", 2, `"and" cannot follow "("`, false},
		{target.Compound, "( )", 2, `")" where a target was expected`, false},
		{target.Compound, "web* db*", 5, `expected "and", "or" or ")" before "db*"`, false},
		{target.Compound, "web* and or db*", 9, `"or" where a target was expected`, false},
		{target.Compound, "not not web*", 4, `"not not"`, false},
		{target.Compound, "(web* or db*)", 0, `"(" must be separated`, false},
		{target.Compound, "( web* or G@os:Debian)", 21, `")" must be separated`, false},
		{target.Compound, "web* and I@role:db", 9, "pillar targeting (I@) is not supported", true},
		{target.Compound, "J@role:d.", 0, "pillar targeting", true},
		{target.Compound, "N@group1", 0, "nodegroup targeting", true},
		{target.Compound, "R@%cluster", 0, "range targeting", true},
		{target.Compound, "web* and G@", 9, "no pattern after the '@'", false},
		{target.Compound, "web* and E@web(", 11, "missing closing )", false},
		{target.Compound, "web* and P@os:deb[", 14, "missing closing ]", false},
		{target.Compound, "G@roles", 7, `has no ":"`, false},
		{target.Compound, "S@10.0.0.5/24", 10, "host bits set (did you mean 10.0.0.0/24?)", false},
		{target.Compound, "S@10.0.0.300", 2, "not an IP address or CIDR network", false},
		{target.PCRE, "(?<=a)b", 0, "invalid regular expression", false},
		{target.PCRE, "a)|(b", 0, "unexpected )", false},
		{target.GrainPCRE, "os:*", 3, "missing argument to repetition operator", false},
		{target.Grain, "os", 2, `"os" has no ":"`, false},
		{target.IPCIDR, "198.18.0.0/33", 0, "not an IP address", false},
		{target.List, " , ,", 0, "no minion ids", false},
		{target.Grain, strings.Repeat("a:", 32) + "x", 2, "33 \":\"-separated parts; at most 32", false},
		{target.Grain, "*:a:*:*:*:x", 2, "4 \"*\" key parts; at most 3", false},
		{target.Compound, "G;@*;x", 5, "a \"*\" key only works with the ':' delimiter", false},
	}
	for _, tt := range tests {
		_, err := target.Compile(tt.expr, tt.typ)
		if err == nil {
			t.Errorf("Compile(%q, %s) succeeded", tt.expr, tt.typ)
			continue
		}
		var se *target.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Compile(%q): %T is not a *SyntaxError: %v", tt.expr, err, err)
			continue
		}
		if se.Pos != tt.pos || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), tt.expr) {
			t.Errorf("Compile(%q, %s) = %v (pos %d); want pos %d and %q", tt.expr, tt.typ, err, se.Pos, tt.pos, tt.msg)
		}
		if errors.Is(err, target.ErrUnsupported) != tt.unsupp {
			t.Errorf("Compile(%q): errors.Is(ErrUnsupported) = %v", tt.expr, !tt.unsupp)
		}
	}
	if _, err := target.Compile("x", "pillar"); !errors.Is(err, target.ErrUnsupported) {
		t.Errorf("Compile with type pillar: %v", err)
	}
}

func TestCompileList(t *testing.T) {
	m, err := target.CompileList([]string{"b", " a ", "b", ""})
	if err != nil {
		t.Fatal(err)
	}
	if m.Expr() != "a,b" || m.Type() != target.List {
		t.Errorf("CompileList = %s", m)
	}
	if !m.Match("a", nil) || m.Match("c", nil) {
		t.Error("CompileList matches wrong ids")
	}
	if _, err := target.CompileList(nil); err == nil {
		t.Error("CompileList(nil) succeeded")
	}
}
