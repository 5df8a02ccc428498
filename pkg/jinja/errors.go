package jinja

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/parser"
	"github.com/brine-cm/brine/internal/gonja/tokens"
)

// parseError turns gonja's parse failure into an *Error with position.
func parseError(name, source string, err error) error {
	var se *parser.SyntaxError
	if errors.As(err, &se) && se.Line > 0 {
		msg := se.Message
		if se.Raw != "" && !strings.Contains(msg, se.Raw) {
			msg += " near " + strconv.Quote(se.Raw)
		}
		return newError(name, source, se.Line, se.Column, "template syntax error: "+msg, err)
	}
	// Lexer errors (an unclosed tag, a stray delimiter) reach the parser
	// without a line; lex again to find where.
	if line, col, msg, ok := lexError(source); ok {
		return newError(name, source, line, col, "template syntax error: "+msg, err)
	}
	var te *tagPosError
	if errors.As(err, &te) {
		msg := te.err.Error()
		if se != nil {
			msg = se.Message
		}
		return newError(name, source, te.line, te.col, "template syntax error: "+msg, err)
	}
	msg := err.Error()
	if se != nil {
		msg = se.Message
	}
	if i := strings.LastIndex(msg, "': "); strings.HasPrefix(msg, "failed to parse template '") && i > 0 {
		msg = msg[i+3:]
	}
	return &Error{Template: name, Message: "template syntax error: " + msg, Err: err}
}

func lexError(source string) (line, col int, msg string, ok bool) {
	l := tokens.NewLexer(source, newConfig())
	go l.Run()
	for tok := range l.Tokens {
		if tok.Type == tokens.Error && !ok {
			line, col = offsetToLineCol(l.Input, tok.Pos)
			msg, ok = tok.Val, true
		}
	}
	return line, col, msg, ok
}

func offsetToLineCol(s string, off int) (int, int) {
	if off > len(s) {
		off = len(s)
	}
	line := 1 + strings.Count(s[:off], "\n")
	start := strings.LastIndex(s[:off], "\n") + 1
	return line, len([]rune(s[start:off])) + 1
}

var (
	rawStart    = regexp.MustCompile(`^\{%[-+]?\s*raw\s*[-+]?%\}`)
	rawEnd      = regexp.MustCompile(`\{%[-+]?\s*endraw`)
	atLine      = regexp.MustCompile(`at line (\d+)`)
	invalidCall = regexp.MustCompile(`invalid call to (function|method) '[^']*'( of [^:]*)?: `)
	undefName   = regexp.MustCompile(`^Unable to evaluate name "([^"]*)"$`)
	undefAttr   = regexp.MustCompile(`^(?i:unable to evaluate) (.*): (?:attribute|item) '(.*)' not found$`)
	noisePrefix = regexp.MustCompile(`^(?:unable to execute template|Unable to render expression at line \d+|Unable to execute controlStructure at line \d+|Unable to execute macro '[^']*'|call\(\[.*?\], map\[.*?\]\)|[A-Za-z]+ControlStructure\(Line=\d+ Col=\d+\)): `)
)

// runtimeError finds the innermost position in gonja's error chain and the
// root cause's message.
func runtimeError(name, source string, root *nodes.Template, err error) error {
	line, col := 0, 0
	var inner *Error
	if findErr(err, &inner) && inner.Template != name {
		// The failure is in a template this one imported or included:
		// report it there, with this template as the next frame.
		for e := err; e != nil && e != error(inner); e = unwrapOnce(e) {
			if pe, ok := e.(*posError); ok {
				line = pe.line
				break
			}
			if m := atLine.FindStringSubmatch(ownMessage(e)); m != nil && line == 0 {
				line, _ = strconv.Atoi(m[1])
			}
		}
		out := *inner
		out.Trace = append(slices.Clone(inner.Trace), Frame{Template: name, Line: line})
		return &out
	}
	cause := err
	for e := err; e != nil; e = unwrapOnce(e) {
		switch x := e.(type) {
		case *posError:
			line, col = x.line, x.col
		case *callError, *raised:
			cause = e
		}
		if m := atLine.FindStringSubmatch(ownMessage(e)); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n != line {
				line, col = n, 0
			}
		}
		if _, ok := cause.(*callError); !ok {
			if _, ok := cause.(*raised); !ok {
				cause = e
			}
		}
	}
	if line > 0 && col == 0 {
		// gonja reports expressions by line only; point at the first {{.
		if i := strings.Index(sourceLine(source, line), "{{"); i >= 0 {
			col = len([]rune(sourceLine(source, line)[:i])) + 1
		}
	}
	msg := cleanMessage(cause.Error())
	var le *loadError
	if findErr(err, &le) {
		msg = le.Error()
	}
	return newError(name, source, line, col, msg, err)
}

// ownMessage is the part of an error's text that is not its cause's.
func ownMessage(e error) string {
	s := e.Error()
	if inner := unwrapOnce(e); inner != nil {
		s = strings.TrimSuffix(s, inner.Error())
	}
	return s
}

func cleanMessage(s string) string {
	s = invalidCall.ReplaceAllString(s, "")
	for {
		loc := noisePrefix.FindStringIndex(s)
		if loc == nil {
			break
		}
		s = s[loc[1]:]
	}
	// Say it the way Jinja2 users know it.
	if m := undefName.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("'%s' is undefined", m[1])
	}
	if m := undefAttr.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("'%s' is undefined (in %s)", strings.Trim(m[2], "'"), m[1])
	}
	return s
}

// badTagChar finds a character that cannot appear in Jinja code inside a
// {{ }} or {% %} tag (outside string literals): a '!' not part of '!=',
// control characters, non-ASCII, and punctuation Jinja has no use for.
// gonja's lexer can spin forever after reporting such a character, so it
// is refused before gonja sees the template.
func badTagChar(source string) (line, col int, ch rune, ok bool) {
	in := false
	var quote byte
	for i := 0; i < len(source); i++ {
		c := source[i]
		switch {
		case !in:
			if c == '{' && i+1 < len(source) && source[i+1] == '#' {
				// A comment: nothing in it is code.
				if end := strings.Index(source[i+2:], "#}"); end >= 0 {
					i += 2 + end + 1
				}
				continue
			}
			if c == '{' && i+1 < len(source) && source[i+1] == '%' {
				if m := rawStart.FindStringIndex(source[i:]); m != nil && m[0] == 0 {
					// {% raw %}...{% endraw %}: the body is text.
					if end := rawEnd.FindStringIndex(source[i+m[1]:]); end != nil {
						i += m[1] + end[0] - 1
						continue
					}
				}
			}
			if c == '{' && i+1 < len(source) && (source[i+1] == '{' || source[i+1] == '%') {
				in = true
				i++
			}
			continue
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		case c == '\'' || c == '"':
			quote = c
			continue
		case (c == '}' || c == '%') && i+1 < len(source) && source[i+1] == '}':
			in = false
			i++
			continue
		case c == '!' && i+1 < len(source) && source[i+1] == '=':
			i++
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			continue
		case strings.IndexByte("_.,:|~+-*/%<>=()[]{}", c) >= 0:
			continue
		}
		line, col = offsetToLineCol(source, i)
		r, _ := utf8.DecodeRuneInString(source[i:])
		return line, col, r, true
	}
	return 0, 0, 0, false
}

// tagPosError is a parse error with no position of its own, placed at the
// tag it happened in; used only when the lexer cannot say better.
type tagPosError struct {
	err       error
	line, col int
}

func (e *tagPosError) Error() string { return e.err.Error() }
func (e *tagPosError) Unwrap() error { return e.err }
