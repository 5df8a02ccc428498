package event

import (
	"context"
	"strings"
	"testing"
)

// literalPrefix is the part of a glob before its first metacharacter:
// every tag it matches must start with it.
func literalPrefix(glob string) string {
	if i := strings.IndexAny(glob, `*?[\`); i >= 0 {
		return glob[:i]
	}
	return glob
}

// FuzzMatchTag: tags arrive from minions (event.send) and are matched
// against the reactor's and the webhook's globs. A match must mean what it
// says: the tag starts with the glob's literal part ('?', '*' and brackets
// may match '/', as in Salt's fnmatch), a NUL never stands in for '/', and
// the bus delivers exactly the events MatchTag accepts.
func FuzzMatchTag(f *testing.F) {
	f.Add("salt/netapi/hook/deploy/*", "salt/netapi/hook/deploy/web")
	f.Add("salt/netapi/hook/deploy/*", "salt\x00netapi\x00hook\x00deploy\x00web")
	f.Add("mine/?/update", "mine/a/update")
	f.Add("job/*/ret/*", "job/1/ret/")
	f.Add("[", "[")
	f.Add(`a\*`, "a*")
	f.Add("key/[a-z]*/accepted", "key/web1/accepted")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, glob, tag string) {
		got := MatchTag(glob, tag)
		if glob == "" || glob == "*" {
			if !got {
				t.Fatalf("%q must match everything, not %q", glob, tag)
			}
			return
		}
		if got && !strings.HasPrefix(tag, literalPrefix(glob)) {
			t.Fatalf("MatchTag(%q, %q): tag lacks the literal prefix %q", glob, tag, literalPrefix(glob))
		}
		if strings.ContainsRune(glob, 0) || strings.ContainsRune(tag, 0) {
			if got {
				t.Fatalf("MatchTag(%q, %q): a NUL could pose as '/'", glob, tag)
			}
		} else if !strings.ContainsAny(glob, `*?[\`) && got != (glob == tag) {
			t.Fatalf("literal glob %q vs %q: got %v", glob, tag, got)
		}
		b := NewLocal()
		s := b.Subscribe(glob, 1)
		defer s.Close()
		b.Publish(context.Background(), tag, nil)
		select {
		case <-s.C:
			if !got {
				t.Fatalf("bus delivered %q to %q though MatchTag says no", tag, glob)
			}
		default:
			if got {
				t.Fatalf("bus did not deliver %q to %q", tag, glob)
			}
		}
	})
}
