package pyrender

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// SourceError is a problem found in a #!py file before or while it runs.
type SourceError struct {
	File      string
	Line      int
	Construct string // what was refused or failed: "import subprocess", "class", "step limit"
	Msg       string
}

func (e *SourceError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Construct, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Construct, e.Msg)
}

// refused maps Python keywords Starlark lacks to advice. Starlark reserves
// most of them, but its parser only says "got class, want ..."; a Salt
// user deserves to be told what to write instead.
var refused = map[string]string{
	"class":    "classes are not supported in #!py (Starlark has none); use functions and dicts",
	"try":      "try/except is not supported in #!py (Starlark has no exceptions); check values before using them",
	"except":   "try/except is not supported in #!py (Starlark has no exceptions)",
	"finally":  "try/finally is not supported in #!py (Starlark has no exceptions)",
	"raise":    "raise is not supported in #!py; call fail('message') to abort the render",
	"with":     "with statements are not supported in #!py (there are no files or locks to manage)",
	"yield":    "generators (yield) are not supported in #!py; build and return a list",
	"is":       "the `is` operator is not supported in #!py; compare with == (x == None)",
	"global":   "the global statement is not supported in #!py; return values instead of assigning globals",
	"nonlocal": "the nonlocal statement is not supported in #!py",
	"del":      "del is not supported in #!py; use dict.pop(key)",
	"assert":   "assert is not supported in #!py; use `if not cond: fail('...')`",
	"exec":     "exec is not supported in #!py",
	"async":    "async code is not supported in #!py",
	"await":    "async code is not supported in #!py",
}

// token is one lexical item of the Python source, enough of Python's
// lexer to tell code from strings and comments.
type token struct {
	kind byte // 'n' name, 's' string, 'o' operator/punctuation, 'c' number
	text string
	line int
	off  int // byte offset in the source
	// first is true for the first token of a statement (after a newline
	// outside brackets, after ';' or after a block's ':').
	first bool
}

// tokenize splits Python source into tokens. Unterminated strings are
// reported; everything else is left to Starlark's own parser.
func tokenize(file, src string) ([]token, error) {
	var toks []token
	line, depth := 1, 0
	first := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
			if depth == 0 {
				first = true
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			i++
		case c == '\\' && i+1 < len(src) && src[i+1] == '\n':
			line++
			i += 2
		case c == '\\' && i+2 < len(src) && src[i+1] == '\r' && src[i+2] == '\n':
			line++
			i += 3
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case isNameStart(c):
			j := i
			for j < len(src) && isNameChar(src[j]) {
				j++
			}
			// String prefixes: r'', b'', u'', rb'', br'', f''.
			if j < len(src) && (src[j] == '\'' || src[j] == '"') && j-i <= 2 && isStringPrefix(src[i:j]) {
				end, nl, err := scanString(src, j)
				if err != nil {
					return nil, &SourceError{File: file, Line: line, Construct: "string", Msg: err.Error()}
				}
				toks = append(toks, token{kind: 's', text: src[i:end], line: line, off: i, first: first})
				first = false
				line += nl
				i = end
				continue
			}
			toks = append(toks, token{kind: 'n', text: src[i:j], line: line, off: i, first: first})
			first = false
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
			j := i
			for j < len(src) && (isNameChar(src[j]) || src[j] == '.') {
				j++
			}
			toks = append(toks, token{kind: 'c', text: src[i:j], line: line, off: i, first: first})
			first = false
			i = j
		case c == '\'' || c == '"':
			end, nl, err := scanString(src, i)
			if err != nil {
				return nil, &SourceError{File: file, Line: line, Construct: "string", Msg: err.Error()}
			}
			toks = append(toks, token{kind: 's', text: src[i:end], line: line, off: i, first: first})
			first = false
			line += nl
			i = end
		default:
			op := string(c)
			if i+1 < len(src) {
				switch two := src[i : i+2]; two {
				case ">>", "<<", "==", "!=", "<=", ">=", "**", "//", "+=", "-=", "*=", "/=", "%=", "|=", "&=", "^=", "->":
					op = two
				}
			}
			switch op {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				if depth > 0 {
					depth--
				}
			}
			toks = append(toks, token{kind: 'o', text: op, line: line, off: i, first: first})
			// A statement follows ';' and, on the same line, a block's ':'
			// (`if x: return y`); other operators continue the statement.
			first = op == ";" || (op == ":" && depth == 0)
			i += len(op)
		}
	}
	return toks, nil
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

func isStringPrefix(p string) bool {
	switch strings.ToLower(p) {
	case "r", "b", "u", "rb", "br", "f", "fr", "rf", "ur":
		return true
	}
	return false
}

// scanString returns the end offset of the string literal starting with
// the quote at i, and how many newlines it spans.
func scanString(src string, i int) (end, newlines int, err error) {
	q := src[i]
	triple := strings.HasPrefix(src[i:], strings.Repeat(string(q), 3))
	j := i + 1
	if triple {
		j = i + 3
	}
	for j < len(src) {
		c := src[j]
		switch {
		case c == '\\':
			if j+1 < len(src) && src[j+1] == '\n' {
				newlines++
			}
			j += 2
			continue
		case c == '\n':
			if !triple {
				return 0, 0, fmt.Errorf("unterminated string literal")
			}
			newlines++
		case c == q:
			if !triple {
				return j + 1, newlines, nil
			}
			if strings.HasPrefix(src[j:], strings.Repeat(string(q), 3)) {
				return j + 3, newlines, nil
			}
		}
		j++
	}
	return 0, 0, fmt.Errorf("unterminated string literal")
}

var (
	dottedName = `[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*`
	ident      = `[A-Za-z_][A-Za-z0-9_]*`
	importRe   = regexp.MustCompile(`^import\s+(` + dottedName + `(?:\s+as\s+` + ident + `)?(?:\s*,\s*` + dottedName + `(?:\s+as\s+` + ident + `)?)*)\s*$`)
	fromRe     = regexp.MustCompile(`^from\s+(` + dottedName + `)\s+import\s+\(?\s*(` + ident + `(?:\s+as\s+` + ident + `)?(?:\s*,\s*` + ident + `(?:\s+as\s+` + ident + `)?)*)\s*,?\s*\)?\s*$`)
	aliasRe    = regexp.MustCompile(`^(` + dottedName + `)(?:\s+as\s+(` + ident + `))?$`)
)

// preprocess rewrites Python's import statements, which Starlark lacks,
// into assignments from the host's modules, keeping every other byte (and
// so every line number) where it was; and refuses Python constructs that
// Starlark lacks, naming file, line and construct. Imports of modules
// brine does not provide are refused here, before anything runs.
func preprocess(file, src string) (string, error) {
	toks, err := tokenize(file, src)
	if err != nil {
		return "", err
	}
	// Python 2's u'' prefix means nothing to Starlark, whose strings are
	// already Unicode text; blank it (same length, so offsets hold).
	// f-strings have no Starlark equivalent.
	var blanked []byte
	for _, t := range toks {
		if t.kind != 's' || t.text[0] == '\'' || t.text[0] == '"' {
			continue
		}
		prefix := strings.ToLower(t.text[:strings.IndexAny(t.text, "'\"")])
		if strings.Contains(prefix, "f") {
			return "", &SourceError{File: file, Line: t.line, Construct: "f-string", Msg: "f-strings are not supported in #!py; use '{0}'.format(x) or '%s' % x"}
		}
		if strings.Contains(prefix, "u") {
			if blanked == nil {
				blanked = []byte(src)
			}
			blanked[t.off+strings.IndexAny(t.text, "uU")] = ' '
		}
	}
	if blanked != nil {
		src = string(blanked)
	}
	var out strings.Builder
	last := 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != 'n' {
			continue
		}
		if msg, bad := refused[t.text]; bad {
			return "", &SourceError{File: file, Line: t.line, Construct: t.text, Msg: msg}
		}
		if t.text == "print" && t.first && i+1 < len(toks) && toks[i+1].text != "(" {
			construct := "print statement"
			if toks[i+1].text == ">>" {
				construct = "print >>"
			}
			return "", &SourceError{File: file, Line: t.line, Construct: construct,
				Msg: "Python 2 print statements are not supported in #!py; call print(...) (output goes to the master's log)"}
		}
		if (t.text != "import" && t.text != "from") || !t.first {
			if t.text == "import" || t.text == "from" {
				return "", &SourceError{File: file, Line: t.line, Construct: t.text, Msg: "import must be a statement of its own"}
			}
			continue
		}
		// The statement runs to the next token that starts a statement
		// or to the end of its line.
		j := i + 1
		for j < len(toks) && !toks[j].first && toks[j].text != ";" {
			j++
		}
		end := len(src)
		if j < len(toks) {
			end = toks[j].off
		}
		stmt := src[t.off:end]
		if k := strings.IndexByte(stmt, '#'); k >= 0 {
			stmt = stmt[:k]
		}
		lastTok := toks[j-1]
		if lastTok.line != t.line {
			return "", &SourceError{File: file, Line: t.line, Construct: strings.TrimSpace(firstLine(stmt)),
				Msg: "an import must fit on one line in #!py"}
		}
		repl, err := rewriteImport(file, t.line, strings.TrimSpace(stmt))
		if err != nil {
			return "", err
		}
		stmtEnd := lastTok.off + len(lastTok.text)
		out.WriteString(src[last:t.off])
		out.WriteString(repl)
		last = stmtEnd
		i = j - 1
	}
	out.WriteString(src[last:])
	return out.String(), nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// rewriteImport turns one import statement into Starlark assignments on
// one line: `import hmac as h` -> `h = __import__("hmac")`.
func rewriteImport(file string, line int, stmt string) (string, error) {
	norm := strings.Join(strings.Fields(stmt), " ")
	var parts []string
	if m := importRe.FindStringSubmatch(stmt); m != nil {
		for _, item := range strings.Split(m[1], ",") {
			a := aliasRe.FindStringSubmatch(strings.TrimSpace(item))
			mod, as := a[1], a[2]
			if err := checkModule(file, line, norm, mod); err != nil {
				return "", err
			}
			switch {
			case as != "":
				parts = append(parts, fmt.Sprintf("%s = __import__(%q)", as, mod))
			default:
				// `import os.path` binds `os`, whose .path is the submodule.
				top, _, _ := strings.Cut(mod, ".")
				parts = append(parts, fmt.Sprintf("%s = __import__(%q)", top, top))
			}
		}
		return strings.Join(parts, "; "), nil
	}
	if m := fromRe.FindStringSubmatch(stmt); m != nil && strings.Count(stmt, "(") == strings.Count(stmt, ")") {
		mod := m[1]
		if err := checkModule(file, line, norm, mod); err != nil {
			return "", err
		}
		for _, item := range strings.Split(m[2], ",") {
			a := aliasRe.FindStringSubmatch(strings.TrimSpace(item))
			name, as := a[1], a[2]
			if as == "" {
				as = name
			}
			if !moduleHas(mod, name) {
				return "", &SourceError{File: file, Line: line, Construct: norm,
					Msg: fmt.Sprintf("module %s has no %s in #!py (it has %s)", mod, name, strings.Join(moduleMembers(mod), ", "))}
			}
			parts = append(parts, fmt.Sprintf("%s = __import__(%q).%s", as, mod, name))
		}
		return strings.Join(parts, "; "), nil
	}
	if strings.HasSuffix(stmt, "*") {
		return "", &SourceError{File: file, Line: line, Construct: norm, Msg: "`from X import *` is not supported in #!py; name what you use"}
	}
	return "", &SourceError{File: file, Line: line, Construct: norm, Msg: "not an import statement #!py understands (import X, import X as Y, from X import Y)"}
}

func checkModule(file string, line int, stmt, mod string) error {
	if _, ok := moduleNames[mod]; ok {
		return nil
	}
	return &SourceError{File: file, Line: line, Construct: stmt,
		Msg: fmt.Sprintf("module %s is not available in #!py (brine provides %s; files, processes and the network are reached through __salt__)", mod, strings.Join(availableModules(), ", "))}
}

func availableModules() []string {
	out := make([]string, 0, len(moduleNames))
	for m := range moduleNames {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
