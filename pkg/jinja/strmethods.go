package jinja

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/brine-cm/brine/internal/gonja/exec"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// pyStrMethods are Python's str methods whose gonja versions take other
// arguments or return lists where Python returns tuples.
var pyStrMethods = map[string]exec.Method[string]{
	"format": strFormat,
	"split": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return splitMethod(self, a, false)
	},
	"rsplit": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return splitMethod(self, a, true)
	},
	"startswith": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return affixMethod(self, a, strings.HasPrefix)
	},
	"endswith": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return affixMethod(self, a, strings.HasSuffix)
	},
	"join": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		items := iterItems(a.Args[0])
		parts := make([]string, len(items))
		for i, it := range items {
			s, ok := unwrapModel(it).(string)
			if !ok {
				return nil, pyErrorf("TypeError: sequence item %d: expected str instance, %s found", i, typeName(unwrapModel(it)))
			}
			parts[i] = s
		}
		return strings.Join(parts, self), nil
	},
	"count": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		return strings.Count(self, a.Args[0].String()), nil
	},
	"center": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return padMethod(self, a, "center")
	},
	"ljust": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return padMethod(self, a, "ljust")
	},
	"rjust": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return padMethod(self, a, "rjust")
	},
	"partition": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		sep := a.Args[0].String()
		if i := strings.Index(self, sep); i >= 0 {
			return &Tuple{self[:i], sep, self[i+len(sep):]}, nil
		}
		return &Tuple{self, "", ""}, nil
	},
	"rpartition": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		sep := a.Args[0].String()
		if i := strings.LastIndex(self, sep); i >= 0 {
			return &Tuple{self[:i], sep, self[i+len(sep):]}, nil
		}
		return &Tuple{"", "", self}, nil
	},
	"strip": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return stripMethod(self, a, true, true)
	},
	"lstrip": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return stripMethod(self, a, true, false)
	},
	"rstrip": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return stripMethod(self, a, false, true)
	},
	"expandtabs": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 0, 1); err != nil {
			return nil, err
		}
		size := 8
		if len(a.Args) == 1 {
			size = a.Args[0].Integer()
		}
		var b strings.Builder
		col := 0
		for _, r := range self {
			switch r {
			case '\t':
				if size > 0 {
					n := size - col%size
					b.WriteString(strings.Repeat(" ", n))
					col += n
				}
			case '\n', '\r':
				b.WriteRune(r)
				col = 0
			default:
				b.WriteRune(r)
				col++
			}
		}
		return b.String(), nil
	},
	"rindex": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		if err := wantArgs(a, 1, 1); err != nil {
			return nil, err
		}
		i := strings.LastIndex(self, a.Args[0].String())
		if i < 0 {
			return nil, pyErrorf("ValueError: substring not found")
		}
		return utf8.RuneCountInString(self[:i]), nil
	},
	"upper": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return cases.Upper(language.Und).String(self), wantArgs(a, 0, 0)
	},
	"lower": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		return cases.Lower(language.Und).String(self), wantArgs(a, 0, 0)
	},
	"splitlines": func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		keep := (len(a.Args) > 0 && a.Args[0].IsTrue()) || a.GetKeywordArgument("keepends", false).IsTrue()
		l := List{}
		for self != "" {
			i := strings.IndexAny(self, "\n\r\v\f\x1c\x1d\x1e\x85")
			if i < 0 {
				l = append(l, self)
				break
			}
			n := 1
			if self[i] == '\r' && i+1 < len(self) && self[i+1] == '\n' {
				n = 2
			}
			if keep {
				l = append(l, self[:i+n])
			} else {
				l = append(l, self[:i])
			}
			self = self[i+n:]
		}
		return &l, nil
	},
}

func splitMethod(self string, a *exec.VarArgs, right bool) (any, error) {
	if err := wantArgs(a, 0, 2); err != nil {
		return nil, err
	}
	sep, haveSep := "", false
	maxsplit := -1
	if len(a.Args) > 0 && !a.Args[0].IsNil() {
		sep, haveSep = a.Args[0].String(), true
	}
	if v, ok := a.KwArgs["sep"]; ok && !v.IsNil() {
		sep, haveSep = v.String(), true
	}
	if len(a.Args) > 1 {
		maxsplit = a.Args[1].Integer()
	}
	if v, ok := a.KwArgs["maxsplit"]; ok {
		maxsplit = v.Integer()
	}
	if haveSep && sep == "" {
		return nil, fmt.Errorf("ValueError: empty separator")
	}
	var parts []string
	switch {
	case haveSep && maxsplit < 0:
		parts = strings.Split(self, sep)
	case haveSep && !right:
		parts = strings.SplitN(self, sep, maxsplit+1)
	case haveSep:
		parts = nil
		rest := self
		for i := 0; i < maxsplit; i++ {
			j := strings.LastIndex(rest, sep)
			if j < 0 {
				break
			}
			parts = append([]string{rest[j+len(sep):]}, parts...)
			rest = rest[:j]
		}
		parts = append([]string{rest}, parts...)
	default:
		fields := strings.Fields(self)
		if maxsplit < 0 || maxsplit >= len(fields) {
			parts = fields
		} else if !right {
			// Python keeps the remainder as written, minus leading space.
			rest := strings.TrimLeftFunc(self, unicode.IsSpace)
			for i := 0; i < maxsplit; i++ {
				j := strings.IndexFunc(rest, unicode.IsSpace)
				parts = append(parts, rest[:j])
				rest = strings.TrimLeftFunc(rest[j:], unicode.IsSpace)
			}
			parts = append(parts, rest)
		} else {
			rest := strings.TrimRightFunc(self, unicode.IsSpace)
			var tail []string
			for i := 0; i < maxsplit; i++ {
				j := strings.LastIndexFunc(rest, unicode.IsSpace)
				tail = append([]string{rest[j+1:]}, tail...)
				rest = strings.TrimRightFunc(rest[:j], unicode.IsSpace)
			}
			parts = append([]string{rest}, tail...)
		}
	}
	l := make(List, len(parts))
	for i, p := range parts {
		l[i] = p
	}
	return &l, nil
}

func affixMethod(self string, a *exec.VarArgs, has func(string, string) bool) (any, error) {
	if err := wantArgs(a, 1, 3); err != nil {
		return nil, err
	}
	// start and end slice self as s[start:end] does.
	if len(a.Args) > 1 {
		r := []rune(self)
		start, end := a.Args[1].Integer(), len(r)
		if len(a.Args) > 2 {
			end = a.Args[2].Integer()
		}
		start, end = pyIndex(start, len(r), true), pyIndex(end, len(r), true)
		if start > end {
			return false, nil
		}
		self = string(r[start:end])
	}
	switch x := modelOf(a.Args[0]).(type) {
	case string:
		return has(self, x), nil
	case *Tuple:
		for _, it := range *x {
			s, ok := it.(string)
			if !ok {
				return nil, pyErrorf("TypeError: tuple for startswith/endswith must only contain str, not %s", typeName(it))
			}
			if has(self, s) {
				return true, nil
			}
		}
		return false, nil
	}
	return nil, pyErrorf("TypeError: startswith/endswith first arg must be str or a tuple of str, not %s", typeName(modelOf(a.Args[0])))
}

func padMethod(self string, a *exec.VarArgs, how string) (any, error) {
	if err := wantArgs(a, 1, 2); err != nil {
		return nil, err
	}
	width := a.Args[0].Integer()
	fill := " "
	if len(a.Args) == 2 {
		fill = a.Args[1].String()
		if utf8.RuneCountInString(fill) != 1 {
			return nil, pyErrorf("TypeError: the fill character must be exactly one character long")
		}
	}
	n := width - utf8.RuneCountInString(self)
	if n <= 0 {
		return self, nil
	}
	switch how {
	case "ljust":
		return self + strings.Repeat(fill, n), nil
	case "rjust":
		return strings.Repeat(fill, n) + self, nil
	}
	// CPython's center puts the odd space on the left when width is odd.
	left := n/2 + (n & width & 1)
	return strings.Repeat(fill, left) + self + strings.Repeat(fill, n-left), nil
}

func stripMethod(self string, a *exec.VarArgs, left, right bool) (any, error) {
	if err := wantArgs(a, 0, 1); err != nil {
		return nil, err
	}
	if len(a.Args) == 0 || a.Args[0].IsNil() {
		if left {
			self = strings.TrimLeftFunc(self, unicode.IsSpace)
		}
		if right {
			self = strings.TrimRightFunc(self, unicode.IsSpace)
		}
		return self, nil
	}
	chars := a.Args[0].String()
	if left {
		self = strings.TrimLeft(self, chars)
	}
	if right {
		self = strings.TrimRight(self, chars)
	}
	return self, nil
}
