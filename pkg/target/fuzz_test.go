package target_test

import (
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/target"
)

var fuzzMinions = []struct {
	id     string
	grains map[string]any
}{
	{"web-01", web01},
	{"db-02", db02},
	{"", nil},
	{"é[*]", map[string]any{"": map[string]any{"": []any{nil, map[string]any{}, []any{}}}, "*": "*"}},
}

// FuzzCompile feeds arbitrary text to every parser (the compound parser
// above all): Compile must never panic, and whatever compiles must evaluate
// and narrow through an index without panicking.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		"web* and G@os:Debian", "a or b and c", "not G@x:y and web*", "( a or b ) and not ( c )",
		"G@roles:web and G@env:prod or L@a,b", "E@web(1|2) or P@os:deb.*", "S@10.0.0.0/8 or S@::1",
		"G;@a;b:c", "G@*:x", "N@grp", "I@role:x", "( ( (", ") )", "not not x", "web* not db*",
		"G@ip_interfaces:eth0:198.18.0.5", "L@,,", "[!]", "G@a:0:b", "*;*", "G;@*;x", "P@*:(",
		"G@", "(web*", "x)", "and", "not", "G@\x00:\xff", "E@\\", "S@1.2.3.4/32",
	}
	for _, s := range seeds {
		f.Add(s, uint8(6))
	}
	f.Add("web-0[1-3]", uint8(0))
	f.Add("os:deb*", uint8(3))
	f.Add("os:(deb", uint8(4))
	f.Fuzz(func(t *testing.T, expr string, typ uint8) {
		tt := target.Types[int(typ)%len(target.Types)]
		m, err := target.Compile(expr, tt)
		if err != nil {
			if !strings.Contains(err.Error(), string(tt)) {
				t.Errorf("error %q does not name the target type", err)
			}
			return
		}
		ix := newMapIndex(map[string]map[string]any{"web-01": web01, "db-02": db02})
		cands, bounded := m.Candidates(ix)
		for _, mn := range fuzzMinions {
			got := m.Match(mn.id, mn.grains)
			if mn.id == "web-01" || mn.id == "db-02" {
				found := false
				for _, c := range cands {
					if c.ID == mn.id {
						found = true
						if c.Sure && !got {
							t.Errorf("%s %q: %s Sure but no match", tt, expr, mn.id)
						}
					}
				}
				if bounded && got && !found {
					t.Errorf("%s %q matches %s but it is not a candidate", tt, expr, mn.id)
				}
			}
		}
	})
}
