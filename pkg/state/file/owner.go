package file

import (
	"fmt"
	"io/fs"
	"math"
	"os/user"
	"strconv"
	"strings"
)

// LookupUID resolves a user name or numeric id.
func LookupUID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w", name, err)
	}
	return strconv.Atoi(u.Uid)
}

// LookupGID resolves a group name or numeric id.
func LookupGID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// ParseMode reads a Salt file mode. Strings are octal ("0644", "644",
// "2755"). Numbers follow Salt's rule that `mode: 644` means 0644: their
// decimal digits are read as octal. A number with an 8 or 9 in it was
// most likely an unquoted 0755 already turned into decimal by a YAML 1.1
// reader, and is refused rather than guessed at.
func ParseMode(v any) (fs.FileMode, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case int:
		s = strconv.Itoa(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case uint64:
		s = strconv.FormatUint(x, 10)
	case float64:
		if x != math.Trunc(x) || x < 0 {
			return 0, fmt.Errorf("mode %v: not an octal file mode", v)
		}
		s = strconv.FormatInt(int64(x), 10)
	default:
		return 0, fmt.Errorf("mode %v: want an octal string such as \"0644\", got %T", v, v)
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 || s == "" {
		return 0, fmt.Errorf("mode %v: not an octal file mode (quote it: '0644')", v)
	}
	m := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// FormatMode renders a mode as Salt reports it: "0644", "2755".
func FormatMode(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}

func modeBits(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}
