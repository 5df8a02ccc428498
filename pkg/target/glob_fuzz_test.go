package target

import (
	"regexp"
	"strings"
	"testing"
)

// pyTranslate is CPython 3.11's fnmatch.translate, line for line, emitting
// Go regexp syntax. It is an independent second implementation of the set
// handling in glob.go (which builds ranges directly) for differential
// fuzzing; fnmatch.golden pins both to real Python.
func pyTranslate(pat string) string {
	p := []rune(pat)
	var res strings.Builder
	i, n := 0, len(p)
	lastStar := false
	for i < n {
		c := p[i]
		i++
		if c == '*' {
			if !lastStar {
				res.WriteString(".*")
			}
			lastStar = true
			continue
		}
		lastStar = false
		switch c {
		case '?':
			res.WriteString(".")
		case '[':
			j := i
			if j < n && p[j] == '!' {
				j++
			}
			if j < n && p[j] == ']' {
				j++
			}
			for j < n && p[j] != ']' {
				j++
			}
			if j >= n {
				res.WriteString(`\[`)
				continue
			}
			var stuff string
			if !containsRune(p[i:j], '-') {
				stuff = strings.ReplaceAll(string(p[i:j]), `\`, `\\`)
			} else {
				var chunks []string
				k := i + 1
				if p[i] == '!' {
					k = i + 2
				}
				for {
					k = indexRune(p, '-', k, j)
					if k < 0 {
						break
					}
					chunks = append(chunks, string(p[i:k]))
					i = k + 1
					k += 3
				}
				if chunk := string(p[i:j]); chunk != "" {
					chunks = append(chunks, chunk)
				} else {
					chunks[len(chunks)-1] += "-"
				}
				for k := len(chunks) - 1; k > 0; k-- {
					a, b := []rune(chunks[k-1]), []rune(chunks[k])
					if a[len(a)-1] > b[0] {
						chunks[k-1] = string(a[:len(a)-1]) + string(b[1:])
						chunks = append(chunks[:k], chunks[k+1:]...)
					}
				}
				for x, s := range chunks {
					chunks[x] = strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "-", `\-`)
				}
				stuff = strings.Join(chunks, "-")
			}
			stuff = regexp.MustCompile(`([&~|])`).ReplaceAllString(stuff, `\$1`)
			i = j + 1
			switch {
			case stuff == "":
				res.WriteString(`[^\x00-\x{10FFFF}]`) // Python's (?!): never
			case stuff == "!":
				res.WriteString(".")
			default:
				if stuff[0] == '!' {
					stuff = "^" + stuff[1:]
				} else if stuff[0] == '^' || stuff[0] == '[' {
					stuff = `\` + stuff
				}
				// Go needs ']' escaped inside a class where Python takes a
				// leading one literally.
				stuff = strings.ReplaceAll(stuff, "]", `\]`)
				stuff = strings.ReplaceAll(stuff, `[`, `\[`)
				stuff = strings.ReplaceAll(stuff, `\\[`, `\[`)
				res.WriteString("[" + stuff + "]")
			}
		default:
			res.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return `(?s)\A(?:` + res.String() + `)\z`
}

func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"web-[0-9]*", "web-01"}, {"[!]]", "a"}, {"[z-a!x]", "y"}, {"[a-b-c]", "-"}, {"*a*a*b", "aaab"},
		{"[", "["}, {"[]-a]", "^"}, {"[\\-z]", "\\"}, {"[ä-ü]x", "öx"}, {"a?c", "a\nc"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		if !utf8Valid(pat) || !utf8Valid(name) || len(pat) > 64 {
			return // Python strings are code points; so is the oracle
		}
		re, err := regexp.Compile(pyTranslate(pat))
		if err != nil {
			t.Skipf("oracle cannot express %q: %v", pat, err)
		}
		if got, want := compileGlob(pat).match(name), re.MatchString(name); got != want {
			t.Errorf("glob %q on %q = %v, translate says %v (regex %s)", pat, name, got, want, re)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
