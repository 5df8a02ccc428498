package render

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/output"
	"github.com/brine-cm/brine/pkg/state"
	"github.com/brine-cm/brine/pkg/state/apply"
)

// The ten-state SLS of testdata/trees/order, compiled here, sent as JSON
// (as the wire carries it) and applied by the minion's applier on real
// files and real commands: states run in the order written, with
// order: first/last/N, includes and requisites taking precedence, and
// mode: 0640 written unquoted ends up as file mode 0640.
func TestWrittenOrderApplied(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "srv")
	tree, c := loadCase(t, "testdata/trees/order")
	chunks, err := tree.SLS(context.Background(), c.Minion, c.Mods, Options{Pillar: map[string]any{"dir": dir}})
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(chunks)
	if err != nil {
		t.Fatal(err)
	}
	var sent []state.Chunk
	if err := json.Unmarshal(wire, &sent); err != nil {
		t.Fatal(err)
	}
	env := &apply.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	results := apply.Run(context.Background(), env, apply.Default(env), sent)

	var b strings.Builder
	for _, r := range results {
		ok := r.Result != nil && *r.Result
		if !ok {
			t.Errorf("%s failed: %s", r.ID, r.Comment)
		}
		out := ""
		if s, isStr := r.Changes["stdout"].(string); isStr {
			out = " -> " + s
		}
		fmt.Fprintf(&b, "%2d %s %s%s\n", r.RunNum, r.Function, strings.ReplaceAll(r.ID, dir, "<dir>"), out)
	}
	golden := "testdata/trees/order/applied.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("applied order differs from %s\n--- got\n%s--- want\n%s", golden, b.String(), want)
	}

	// The highstate outputter lists the states in the order they ran.
	ret := map[string]any{}
	for i, r := range results {
		b, _ := json.Marshal(r)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		ret[sent[i].Key()] = m
	}
	text, _ := output.Highstate("web1", ret, output.Options{StateOutput: "terse"})
	var names []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "Name: ") {
			line, _, _ = strings.Cut(line, " Started:") // times vary
			names = append(names, strings.ReplaceAll(strings.TrimSpace(line), dir, "<dir>"))
		}
	}
	gotOut := strings.Join(names, "\n") + "\n"
	goldenOut := "testdata/trees/order/highstate.golden"
	if *update {
		if err := os.WriteFile(goldenOut, []byte(gotOut), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantOut, err := os.ReadFile(goldenOut)
	if err != nil {
		t.Fatal(err)
	}
	if gotOut != string(wantOut) {
		t.Errorf("highstate output differs from %s\n--- got\n%s--- want\n%s", goldenOut, gotOut, wantOut)
	}

	for p, mode := range map[string]os.FileMode{dir: 0o750, filepath.Join(dir, "motd"): 0o640} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", p, st.Mode().Perm(), mode)
		}
	}
}

// jinja_sls_env's trim_blocks/lstrip_blocks reach the engine: the same
// tree renders block lines away only when they are on.
func TestJinjaWhitespaceSettings(t *testing.T) {
	tree, c := loadCase(t, "testdata/trees/relimport")
	contents := func(settings JinjaSettings) string {
		tree.Jinja = settings
		chunks, err := run(t, tree, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chunks {
			if ch.ID == "app-users" {
				return ch.Args["contents"].(string)
			}
		}
		t.Fatal("no app-users chunk")
		return ""
	}
	if got, want := contents(JinjaSettings{SLS: JinjaEnv{TrimBlocks: true, LstripBlocks: true}}), "alice\nbob\n"; got != want {
		t.Errorf("trim+lstrip: %q, want %q", got, want)
	}
	if got, want := contents(JinjaSettings{}), "\nalice\n\nbob\n"; got != want {
		t.Errorf("Salt's defaults: %q, want %q", got, want)
	}
}
