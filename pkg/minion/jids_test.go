package minion

import (
	"fmt"
	"testing"
)

// TestJidSetRunsEachJobOnce: the first sight of a jid is new, every later
// one is not, an empty jid never is, and the memory is bounded, oldest
// forgotten first.
func TestJidSetRunsEachJobOnce(t *testing.T) {
	var s jidSet
	steps := []struct {
		jid  string
		want bool
	}{
		{"20261125120000000001", true},
		{"20261125120000000001", false},
		{"20261125120000000002", true},
		{"20261125120000000001", false},
		{"", false},
		{"", false},
	}
	for i, st := range steps {
		if got := s.add(st.jid); got != st.want {
			t.Fatalf("step %d add(%q) = %v, want %v", i, st.jid, got, st.want)
		}
	}
	for i := range maxSeenJobs {
		s.add(fmt.Sprintf("fill-%d", i))
	}
	if len(s.set) != maxSeenJobs || len(s.order) != maxSeenJobs {
		t.Fatalf("set holds %d/%d jids, bound %d", len(s.set), len(s.order), maxSeenJobs)
	}
	if !s.add("20261125120000000001") {
		t.Fatal("the oldest jid was not forgotten")
	}
	if s.add(fmt.Sprintf("fill-%d", maxSeenJobs-1)) {
		t.Fatal("a recent jid was forgotten")
	}
}
