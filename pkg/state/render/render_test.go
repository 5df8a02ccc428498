package render

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/state"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/trees")

// testMatcher is a small stand-in for pkg/target: glob, list, pcre,
// grain, grain_pcre and a compound of those joined by "and".
type testMatcher struct{}

func (testMatcher) Match(expr, tgtType, id string, grains map[string]any) (bool, error) {
	switch tgtType {
	case "glob", "":
		return path.Match(expr, id)
	case "list":
		return slices.Contains(strings.Split(expr, ","), id), nil
	case "pcre":
		return regexp.MatchString("^(?:"+expr+")$", id)
	case "grain", "grain_pcre":
		key, want, ok := strings.Cut(expr, ":")
		if !ok {
			return false, fmt.Errorf("grain target %q needs key:value", expr)
		}
		var vals []any
		switch g := grains[key].(type) {
		case []any:
			vals = g
		case nil:
			return false, nil
		default:
			vals = []any{g}
		}
		for _, v := range vals {
			s := fmt.Sprint(v)
			var m bool
			var err error
			if tgtType == "grain" {
				m, err = path.Match(want, s)
			} else {
				m, err = regexp.MatchString(want, s)
			}
			if err != nil || m {
				return m, err
			}
		}
		return false, nil
	case "compound":
		for _, term := range strings.Split(expr, " and ") {
			term = strings.TrimSpace(term)
			var ok bool
			var err error
			if rest, isGrain := strings.CutPrefix(term, "G@"); isGrain {
				ok, err = testMatcher{}.Match(rest, "grain", id, grains)
			} else {
				ok, err = testMatcher{}.Match(term, "glob", id, grains)
			}
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	}
	return false, fmt.Errorf("unknown match type %q", tgtType)
}

// fakeMine answers mine.get from fixed data, targeting with testMatcher.
type fakeMine struct {
	grains map[string]map[string]any // minion -> grains
	data   map[string]map[string]any // minion -> fun -> value
	calls  []string
}

func (f *fakeMine) MineGet(_ context.Context, requester, tgt, fun, tgtType string) (map[string]any, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s:%s:%s:%s", requester, tgt, fun, tgtType))
	out := map[string]any{}
	for id, funs := range f.data {
		ok, err := testMatcher{}.Match(tgt, tgtType, id, f.grains[id])
		if err != nil {
			return nil, err
		}
		if v, has := funs[fun]; ok && has {
			out[id] = v
		}
	}
	return out, nil
}

// caseFile is testdata/trees/<case>/case.json.
type caseFile struct {
	Minion    Minion                    `json:"minion"`
	Mods      []string                  `json:"mods"` // empty: highstate
	Saltenv   string                    `json:"saltenv"`
	Pillar    map[string]any            `json:"pillar"`
	Grains    map[string]map[string]any `json:"mine_grains"`
	Mine      map[string]map[string]any `json:"mine"`
	WantError []string                  `json:"want_error"` // substrings; else want.json is compared
	Jinja     JinjaSettings             `json:"jinja"`
}

func loadCase(t *testing.T, dir string) (*Tree, caseFile) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c caseFile
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s/case.json: %v", dir, err)
	}
	c.Minion.Grains = ints(c.Minion.Grains).(map[string]any)
	tree := &Tree{
		FileRoots: map[string][]string{"base": {filepath.Join(dir, "states")}},
		Matcher:   testMatcher{},
		Funcs:     &fakeMine{grains: c.Grains, data: c.Mine},
		Jinja:     c.Jinja,
	}
	if st, err := os.Stat(filepath.Join(dir, "pillar")); err == nil && st.IsDir() {
		tree.PillarRoots = map[string][]string{"base": {filepath.Join(dir, "pillar")}}
	}
	if st, err := os.Stat(filepath.Join(dir, "dev")); err == nil && st.IsDir() {
		tree.FileRoots["dev"] = []string{filepath.Join(dir, "dev")}
	}
	return tree, c
}

// ints makes JSON's whole float64s ints, as YAML-loaded data has.
func ints(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, item := range x {
			x[k] = ints(item)
		}
	case []any:
		for i, item := range x {
			x[i] = ints(item)
		}
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	case nil:
		return map[string]any{}
	}
	return v
}

func run(t *testing.T, tree *Tree, c caseFile) ([]state.Chunk, error) {
	opts := Options{Saltenv: c.Saltenv, Pillar: c.Pillar}
	if len(c.Mods) > 0 {
		return tree.SLS(context.Background(), c.Minion, c.Mods, opts)
	}
	return tree.Highstate(context.Background(), c.Minion, opts)
}

// TestTrees renders and compiles each testdata/trees/<case> and compares
// the chunks with want.json, or the error with want_error.
func TestTrees(t *testing.T) {
	dirs, err := filepath.Glob("testdata/trees/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			tree, c := loadCase(t, dir)
			chunks, err := run(t, tree, c)
			if len(c.WantError) > 0 {
				if err == nil {
					t.Fatalf("no error; want one containing %q", c.WantError)
				}
				for _, w := range c.WantError {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not contain %q:\n%v", w, err)
					}
				}
				// The whole message is what a person reads: keep it in a
				// golden file, with the checkout's path taken out.
				got := strings.ReplaceAll(err.Error(), dir+"/", "<tree>/") + "\n"
				golden := filepath.Join(dir, "error.golden")
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, rerr := os.ReadFile(golden)
				if rerr != nil {
					t.Fatal(rerr)
				}
				if got != string(want) {
					t.Errorf("error differs from %s (run with -update to rewrite after review)\n--- got\n%s--- want\n%s", golden, got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(chunks, "", "  ")
			got = append(got, '\n')
			golden := filepath.Join(dir, "want.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("chunks differ from %s (run with -update to rewrite after review)\n--- got\n%s", golden, got)
			}
			checkInvariants(t, chunks)
		})
	}
}

// checkInvariants holds for every compiled run: unique keys, requisites
// point at chunks in the run, and everything but prereq points backwards.
func checkInvariants(t *testing.T, chunks []state.Chunk) {
	t.Helper()
	at := map[string]int{}
	for i, c := range chunks {
		if _, dup := at[c.Key()]; dup {
			t.Errorf("duplicate chunk %s", c.Key())
		}
		at[c.Key()] = i
		if c.Order != i {
			t.Errorf("chunk %d has order %d", i, c.Order)
		}
	}
	for i, c := range chunks {
		for _, r := range c.Requisites {
			j, ok := at[r.Key]
			if !ok {
				t.Errorf("%s: requisite %s points at nothing", c.Key(), r.Key)
				continue
			}
			if r.Kind == state.Prereq && j < i {
				t.Errorf("%s has prereq on %s but comes after it", c.Key(), r.Key)
			}
			if r.Kind != state.Prereq && j > i {
				t.Errorf("%s %s %s but comes before it", c.Key(), r.Kind, r.Key)
			}
		}
	}
}

func keys(chunks []state.Chunk) []string {
	out := make([]string, len(chunks))
	for i, c := range chunks {
		out[i] = c.ID + "/" + c.Name
	}
	return out
}

var _ = errors.New
