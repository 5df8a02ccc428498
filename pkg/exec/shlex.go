package exec

import (
	"errors"
	"strings"
)

// splitShellWords splits a command line into words the way Python's
// shlex.split does (POSIX mode, no comments), which is what Salt uses when
// python_shell=False: quotes group, backslashes escape, nothing expands.
func splitShellWords(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		i       int
		b       = []byte(s)
		isSpace = func(r byte) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }
	)
	for i < len(b) {
		r := b[i]
		switch {
		case isSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case r == '\\':
			if i+1 >= len(b) {
				return nil, errors.New("no escaped character after trailing backslash")
			}
			cur.WriteByte(b[i+1])
			inWord = true
			i += 2
		case r == '\'':
			end := -1
			for j := i + 1; j < len(b); j++ {
				if b[j] == '\'' {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, errors.New("no closing single quotation")
			}
			cur.Write(b[i+1 : end])
			inWord = true
			i = end + 1
		case r == '"':
			j := i + 1
			closed := false
			for j < len(b) {
				c := b[j]
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && j+1 < len(b) && (b[j+1] == '"' || b[j+1] == '\\') {
					cur.WriteByte(b[j+1])
					j += 2
					continue
				}
				cur.WriteByte(c)
				j++
			}
			if !closed {
				return nil, errors.New("no closing double quotation")
			}
			inWord = true
			i = j + 1
		default:
			cur.WriteByte(r)
			inWord = true
			i++
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// quoteShellWord quotes w so that splitShellWords (and /bin/sh) read it
// back as exactly one word.
func quoteShellWord(w string) string {
	if w != "" && strings.IndexFunc(w, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	}) < 0 {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'"'"'`) + "'"
}
