// Package jinjadiff holds the differential harness: every template of the
// corpus in testdata/cases is rendered by brine's pkg/jinja and by Python's
// Jinja2 (the engine Salt uses), configured as Salt configures it, and the
// outputs are compared byte for byte.
package jinjadiff

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/jinja"
)

// Case is one template of the corpus.
type Case struct {
	Name         string `json:"name"`
	Template     string `json:"template"` // its name, for imports relative to it and errors
	Source       string `json:"source"`
	TrimBlocks   bool   `json:"trim_blocks"`
	LstripBlocks bool   `json:"lstrip_blocks"`
	file         string
	line         int
}

// result is what one engine made of a case.
type result struct {
	Name  string `json:"name"`
	Out   string `json:"out"`
	Error string `json:"error"`
}

// expectedErrors lists the constructs brine refuses on purpose where
// Jinja2 renders: brine's error must name the file, the line and the
// construct (every regexp below must match it).
var expectedErrors = map[string][]string{
	// A macro is a plain function in brine; Jinja2's Macro object
	// attributes (name, arguments, catch_kwargs...) are not there.
	"macro_name_attr": {`formula/macro_name_attr\.sls:1:\d+`, `'name' is undefined \(in hello\.name\)`},
	// Python's integers are unbounded, brine's are 64-bit.
	"n_big_int": {`formula/n_big_int\.sls:1:\d+`, `OverflowError`},
	// A for-loop filter whose answer the loop body changes.
	"l_filter_changed_by_body": {`formula/l_filter_changed_by_body\.sls:1:\d+`, `if-filter changed its answer`},
	// A list that grows while a loop walks over it.
	"l_modify_loop_list_copy": {`formula/l_modify_loop_list_copy\.sls:1:\d+`, `the list changed size during the loop`},
}

// loadCases reads testdata/cases/*.jinja. A case starts with a line
// "=== name [trim_blocks] [lstrip_blocks] [newline]"; its source is every
// line up to the next header, without the last newline unless "newline"
// is given (Salt adds back a trailing newline, so both forms matter).
func loadCases(t testing.TB) []Case {
	t.Helper()
	files, err := filepath.Glob("testdata/cases/*.jinja")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	var cases []Case
	seen := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cur *Case
		var src strings.Builder
		keepNL := false
		flush := func() {
			if cur == nil {
				return
			}
			s := src.String()
			if !keepNL {
				s = strings.TrimSuffix(s, "\n")
			}
			cur.Source = s
			cases = append(cases, *cur)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "=== "); ok {
				flush()
				fields := strings.Fields(rest)
				if len(fields) == 0 {
					t.Fatalf("%s:%d: case without a name", f, n)
				}
				name := fields[0]
				if prev, dup := seen[name]; dup {
					t.Fatalf("%s:%d: case %q already defined in %s", f, n, name, prev)
				}
				seen[name] = fmt.Sprintf("%s:%d", f, n)
				cur = &Case{Name: name, Template: "formula/" + name + ".sls", file: f, line: n}
				src.Reset()
				keepNL = false
				for _, flag := range fields[1:] {
					switch flag {
					case "trim_blocks":
						cur.TrimBlocks = true
					case "lstrip_blocks":
						cur.LstripBlocks = true
					case "newline":
						keepNL = true
					default:
						t.Fatalf("%s:%d: unknown flag %q", f, n, flag)
					}
				}
				continue
			}
			if cur == nil {
				if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
					t.Fatalf("%s:%d: text before the first case", f, n)
				}
				continue
			}
			src.WriteString(line)
			src.WriteByte('\n')
		}
		flush()
	}
	return cases
}

// context is the data every case renders against, read in its written
// order so that dict order can be compared with Python's.
func context(t testing.TB) (map[string]any, []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/context.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeOrdered(json.NewDecoder(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("context.json: %v", err)
	}
	m := v.(*jinja.Map)
	vars := map[string]any{}
	for _, k := range m.Keys() {
		vars[k], _ = m.Get(k)
	}
	vars["salt"] = map[string]any{"test.echo": jinja.Func(func(args []any, kwargs map[string]any) (any, error) {
		return map[string]any{"args": args, "kwargs": kwargs}, nil
	})}
	return vars, raw
}

func decodeOrdered(d *json.Decoder) (any, error) {
	d.UseNumber()
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '{':
			m := jinja.NewMap()
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeOrdered(d)
				if err != nil {
					return nil, err
				}
				m.Set(k.(string), v)
			}
			_, err := d.Token()
			return m, err
		case '[':
			l := []any{}
			for d.More() {
				v, err := decodeOrdered(d)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := d.Token()
			return l, err
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i), nil
		}
		return x.Float64()
	}
	return tok, nil
}

// treeResolver loads imported templates from testdata/tree, names
// relative to the importing template resolved as Jinja2's join_path in
// oracle.py does.
func treeResolver(cases map[string]string) jinja.Resolver {
	return func(from, name string) (string, string, error) {
		full := jinja.RelativeName(from, name)
		if src, ok := cases[full]; ok {
			return full, src, nil
		}
		if strings.HasPrefix(full, "/") || strings.HasPrefix(full, "../") {
			return "", "", fmt.Errorf("template %q leaves the tree", full)
		}
		b, err := os.ReadFile(filepath.Join("testdata", "tree", filepath.FromSlash(full)))
		if err != nil {
			return "", "", fmt.Errorf("template %q not found", full)
		}
		return full, string(b), nil
	}
}

func renderBrine(c Case, vars map[string]any, res jinja.Resolver) result {
	out, err := jinja.RenderOptions(c.Template, c.Source, vars, jinja.Options{
		Resolve: res, TrimBlocks: c.TrimBlocks, LstripBlocks: c.LstripBlocks,
	})
	if err != nil {
		return result{Name: c.Name, Error: err.Error()}
	}
	return result{Name: c.Name, Out: out}
}

// runOracle renders the whole corpus with Jinja2 in one python3 process.
func runOracle(t *testing.T, cases []Case, rawContext []byte) map[string]result {
	t.Helper()
	root, err := filepath.Abs("testdata/tree")
	if err != nil {
		t.Fatal(err)
	}
	req, err := json.Marshal(map[string]any{"root": root, "context": json.RawMessage(rawContext), "cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "testdata/oracle.py")
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("oracle.py (Debian's python3-jinja2 is required): %v\n%s", err, stderr.String())
	}
	var results []result
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("oracle.py output: %v", err)
	}
	byName := map[string]result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	return byName
}

var errorPosition = regexp.MustCompile(`\.sls:\d+`)

func TestJinja2Differential(t *testing.T) {
	cases := loadCases(t)
	if len(cases) < 150 {
		t.Errorf("corpus has %d cases, want at least 150", len(cases))
	}
	vars, raw := context(t)
	want := runOracle(t, cases, raw)
	sources := map[string]string{}
	for _, c := range cases {
		sources[c.Template] = c.Source
	}
	res := treeResolver(sources)
	matched := 0
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			w, ok := want[c.Name]
			if !ok {
				t.Fatalf("oracle returned nothing for %s", c.Name)
			}
			got := renderBrine(c, vars, res)
			where := fmt.Sprintf("%s:%d", c.file, c.line)
			if pats, ok := expectedErrors[c.Name]; ok {
				if got.Error == "" {
					t.Fatalf("%s: listed in expectedErrors but brine rendered %q (Jinja2: %q %s); remove it from the table", where, got.Out, w.Out, w.Error)
				}
				for _, p := range pats {
					if !regexp.MustCompile(p).MatchString(got.Error) {
						t.Errorf("%s: brine's error does not match %q:\n%s", where, p, got.Error)
					}
				}
				return
			}
			switch {
			case w.Error != "" && got.Error == "":
				t.Errorf("%s: Jinja2 fails (%s) but brine rendered %q", where, w.Error, got.Out)
			case w.Error == "" && got.Error != "":
				t.Errorf("%s: brine fails where Jinja2 renders %q:\n%s", where, w.Out, got.Error)
			case w.Error != "":
				// Both refuse: brine's error must say where.
				if !strings.Contains(got.Error, c.Template) || !errorPosition.MatchString(got.Error) {
					t.Errorf("%s: brine's error does not name the file and line:\n%s", where, got.Error)
				} else {
					matched++
				}
			case got.Out != w.Out:
				t.Errorf("%s: output differs\n--- brine\n%q\n--- Jinja2\n%q", where, got.Out, w.Out)
			default:
				matched++
			}
		})
	}
	t.Logf("%d cases, %d match Jinja2 (%d listed as expected errors)", len(cases), matched, len(expectedErrors))
	names := make([]string, 0, len(expectedErrors))
	for n := range expectedErrors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if _, ok := want[n]; !ok {
			t.Errorf("expectedErrors names %q, which is not in the corpus", n)
		}
	}
}

// BenchmarkCorpus renders every corpus case with brine's engine once per
// iteration (Jinja2 is not involved).
func BenchmarkCorpus(b *testing.B) {
	cases := loadCases(b)
	vars, _ := context(b)
	sources := map[string]string{}
	for _, c := range cases {
		sources[c.Template] = c.Source
	}
	res := treeResolver(sources)
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range cases {
			renderBrine(c, vars, res)
		}
	}
}
