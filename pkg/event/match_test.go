package event

import "testing"

func TestMatchTagTable(t *testing.T) {
	tests := []struct {
		glob, tag string
		want      bool
	}{
		{"salt/netapi/hook/bench/*", "salt/netapi/hook/bench/deploy", true},
		{"salt/netapi/hook/bench/*", "job/20261125184500000001/ret/m0001", false},
		{"salt/netapi/hook/bench/*", "salt/netapi/hook/ben", false},
		{"job/*/ret/*", "job/1/ret/web1", true},
		{"job/*/ret/*", "job/1/new", false},
		{"job/1/new", "job/1/new", true},
		{"job/1/new", "job/1/new/x", false},
		{"job/1/new", "job/1/ne", false},
		{"mine/?/update", "mine/a/update", true},
		{"mine/?/update", "mine/ab/update", false},
		{"key/[a-z]*/accepted", "key/web1/accepted", true},
		{"key/[a-z]*/accepted", "key/1web/accepted", false},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"salt/*", "salt\x00x", false},
		{"a\x00b", "a\x00b", false},
		{"[", "[", false},
		{"*", "anything/at/all", true},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := MatchTag(tt.glob, tt.tag); got != tt.want {
			t.Errorf("MatchTag(%q, %q) = %v, want %v", tt.glob, tt.tag, got, tt.want)
		}
	}
}

// TestMatchTagMismatchAllocs: a glob whose literal part the tag lacks (a
// reactor rule tested against every job return) is refused without
// copying either string.
func TestMatchTagMismatchAllocs(t *testing.T) {
	for _, tt := range [][2]string{
		{"salt/netapi/hook/bench/*", "job/20261125184500000001/ret/m0001"},
		{"job/1/new", "job/1/new/x"},
	} {
		if n := testing.AllocsPerRun(100, func() { MatchTag(tt[0], tt[1]) }); n != 0 {
			t.Errorf("MatchTag(%q, %q): %v allocations", tt[0], tt[1], n)
		}
	}
}

func BenchmarkMatchTagReactorRuleVsReturn(b *testing.B) {
	for b.Loop() {
		MatchTag("salt/netapi/hook/bench/*", "job/20261125184500000001/ret/m0001")
	}
}
