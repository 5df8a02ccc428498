// Package output renders job and runner returns for people, the way Salt's
// outputters do (nested, highstate, key), plus json, yaml and tables.
//
// Every string that came from a minion or the master is passed through
// Sanitize before it reaches a terminal: a return value must not be able to
// move the cursor, retitle the window or fake colour codes.
package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Options controls text rendering.
type Options struct {
	// Color enables ANSI colours (callers decide: terminal or --color).
	Color bool
	// StateOutput is Salt's state_output: full (default), terse, mixed or
	// changes. Only the highstate outputter uses it.
	StateOutput string
	// Retcode non-zero renders containers red, as Salt's nested outputter
	// does for a failed return.
	Retcode int
}

// StateOutputs lists the accepted StateOutput values.
var StateOutputs = []string{"full", "terse", "mixed", "changes"}

// KV is one entry of an OrderedMap.
type KV struct {
	Key   string
	Value any
}

// OrderedMap is a mapping rendered in its own order instead of sorted,
// like Salt's OrderedDict.
type OrderedMap []KV

// palette holds Salt's colour codes; every field is empty when colour is off
// so format strings need no conditionals.
type palette struct {
	Red, LightRed, Green, LightGreen, Yellow, LightYellow string
	Blue, LightBlue, Magenta, LightMagenta, Cyan, Endc    string
}

func colors(on bool) palette {
	if !on {
		return palette{}
	}
	return palette{
		Red: "\x1b[0;31m", LightRed: "\x1b[1;31m",
		Green: "\x1b[0;32m", LightGreen: "\x1b[1;32m",
		Yellow: "\x1b[0;33m", LightYellow: "\x1b[1;33m",
		Blue: "\x1b[0;34m", LightBlue: "\x1b[1;34m",
		Magenta: "\x1b[0;35m", LightMagenta: "\x1b[1;35m",
		Cyan: "\x1b[0;36m", Endc: "\x1b[0m",
	}
}

var escapeSeq = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])`)

// Sanitize removes terminal escape sequences and replaces other control
// characters (except tab and newline) with their \x escape, so data from
// minions cannot drive the operator's terminal.
func Sanitize(s string) string {
	if !strings.ContainsFunc(s, isUnsafe) {
		return s
	}
	s = escapeSeq.ReplaceAllString(s, "")
	var b strings.Builder
	for _, r := range s {
		if isUnsafe(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isUnsafe(r rune) bool {
	return r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029')
}

// formatNumber prints a number the way Python's repr does for the values
// JSON can carry: integral values without a fraction, others shortest.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// pyFloat prints a float like Python's str(float): always with a fraction.
func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// scalarText renders nil, bools and numbers as Salt prints them.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "None", true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case float64:
		return formatNumber(x), true
	case float32:
		return formatNumber(float64(x)), true
	case int:
		return strconv.Itoa(x), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// normalize turns arbitrary Go values (structs, typed slices and maps) into
// the JSON-shaped values the outputters walk.
func normalize(v any) any {
	switch v.(type) {
	case nil, bool, string, float64, float32, int, int32, int64, uint64, json.Number,
		map[string]any, []any, OrderedMap:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Sprint(v)
	}
	return out
}

// splitLines splits like Python's str.splitlines: no trailing empty line.
func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// JSON writes v as indented JSON (4 spaces, like Salt's json outputter)
// followed by a newline. OrderedMap keeps its order.
func JSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(jsonable(v)); err != nil {
		return fmt.Errorf("encode json output: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// YAML writes v as a block-style YAML document.
func YAML(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(yamlable(v)); err != nil {
		return fmt.Errorf("encode yaml output: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode yaml output: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// MarshalJSON keeps the map's order.
func (m OrderedMap) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, kv := range m {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(kv.Key)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(jsonable(kv.Value)); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// jsonable replaces values encoding/json cannot encode (NaN, Inf).
func jsonable(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return formatNumber(x)
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// yamlable converts an OrderedMap into a yaml.Node so its order survives.
func yamlable(v any) any {
	switch x := v.(type) {
	case OrderedMap:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, kv := range x {
			var k, val yaml.Node
			if err := k.Encode(kv.Key); err != nil {
				return v
			}
			if err := val.Encode(yamlable(kv.Value)); err != nil {
				return v
			}
			n.Content = append(n.Content, &k, &val)
		}
		return n
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = yamlable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = yamlable(e)
		}
		return out
	}
	return v
}

func stringify(v any) string { return fmt.Sprint(v) }
