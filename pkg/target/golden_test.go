package target

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
)

// readGolden decodes one JSON array per line.
func readGolden(t *testing.T, path string) [][]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row []any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return rows
}

// TestGlobMatchesPythonFnmatch checks the glob engine against answers
// recorded from CPython's fnmatch (testdata/gen_fnmatch.py).
func TestGlobMatchesPythonFnmatch(t *testing.T) {
	for _, row := range readGolden(t, "testdata/fnmatch.golden") {
		pat, name, want := row[0].(string), row[1].(string), row[2].(bool)
		if got := compileGlob(pat).match(name); got != want {
			t.Errorf("fnmatch(%q, %q) = %v, Python says %v", name, pat, got, want)
		}
	}
}

// TestGrainMatchesSalt checks grain and grain_pcre matching against a
// Python transcription of Salt's subdict_match (testdata/gen_grains.py),
// run over testdata/grains_docs.json.
func TestGrainMatchesSalt(t *testing.T) {
	raw, err := os.ReadFile("testdata/grains_docs.json")
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(raw, &docs); err != nil {
		t.Fatal(err)
	}
	for _, row := range readGolden(t, "testdata/grains.golden") {
		doc := docs[int(row[0].(float64))]
		typ, expr, want := Type(row[1].(string)), row[2].(string), row[3].(bool)
		m, err := Compile(expr, typ)
		if err != nil {
			if want {
				t.Errorf("Compile(%q, %s): %v, but Salt matches doc %v", expr, typ, err, row[0])
			}
			continue
		}
		if got := m.Match("x", doc); got != want {
			t.Errorf("%s %q on doc %v = %v, Salt says %v", typ, expr, row[0], got, want)
		}
	}
}
