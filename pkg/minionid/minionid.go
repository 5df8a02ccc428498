// Package minionid holds the one rule for what a minion id may be. Ids
// arrive from the network and become file names in the key store and the
// job cache, so this is a security boundary, not a style check.
package minionid

import (
	"fmt"
	"io/fs"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen leaves room for ".json" within NAME_MAX (255) in the job cache.
const MaxLen = 250

// Validate refuses ids that are unsafe as file names or ambiguous in logs.
// Errors wrap fs.ErrInvalid and quote the id.
func Validate(id string) error {
	bad := func(why string) error {
		return fmt.Errorf("invalid minion id %q: %s: %w", id, why, fs.ErrInvalid)
	}
	switch {
	case id == "":
		return fmt.Errorf("invalid minion id \"\": empty: %w", fs.ErrInvalid)
	case len(id) > MaxLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxLen))
	case !utf8.ValidString(id):
		return bad("not valid UTF-8")
	case strings.HasPrefix(id, "."):
		return bad("starts with '.'")
	case strings.Contains(id, ".."):
		return bad("contains '..'")
	case strings.ContainsAny(id, "/\\"):
		return bad("contains a path separator")
	}
	for _, r := range id {
		if unicode.IsControl(r) { // includes NUL
			return bad("contains a control character")
		}
	}
	return nil
}
