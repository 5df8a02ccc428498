package minionid

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		id, why string
	}{
		{"web01", ""}, {"db-1.prod.example.com", ""}, {"minion_ü", ""}, {strings.Repeat("a", MaxLen), ""},
		{"", "empty"}, {strings.Repeat("a", MaxLen+1), "longer than 250"}, {".hidden", "starts with '.'"},
		{"a..b", "'..'"}, {"a/b", "path separator"}, {`a\b`, "path separator"}, {"a\x00b", "control"},
		{"a\nb", "control"}, {"\xff", "UTF-8"},
	} {
		err := Validate(tc.id)
		if tc.why == "" {
			if err != nil {
				t.Errorf("Validate(%q) = %v, want ok", tc.id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.why) || !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Validate(%q) = %v, want an fs.ErrInvalid error about %q", tc.id, err, tc.why)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"web01", "", "..", "a/b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if Validate(id) == nil && (strings.ContainsAny(id, "/\\\x00") || id == "." || id == ".." || len(id) > MaxLen) {
			t.Fatalf("unsafe id %q accepted", id)
		}
	})
}
