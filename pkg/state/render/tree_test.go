package render

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/state"
)

func TestPillarTargeting(t *testing.T) {
	tree, _ := loadCase(t, "testdata/trees/formula")
	tests := []struct {
		name   string
		minion Minion
		opts   Options
		want   map[string]any
	}{
		{"web minion gets common merged with web", Minion{ID: "web1", Grains: map[string]any{"roles": []any{"web"}}}, Options{},
			map[string]any{"owner": "webteam", "users": map[string]any{"alice": map[string]any{"uid": 1001}, "bob": map[string]any{"uid": 1002, "shell": "/bin/zsh"}}}},
		{"db minion sees its secret and not web's data", Minion{ID: "db1"}, Options{},
			map[string]any{"owner": "ops", "db_password": "hunter2", "users": map[string]any{"alice": map[string]any{"uid": 1001}, "bob": map[string]any{"uid": 1002}}}},
		{"override is deep-merged last", Minion{ID: "web1"}, Options{Pillar: map[string]any{"users": map[string]any{"bob": map[string]any{"uid": 2002}}}},
			map[string]any{"owner": "webteam", "users": map[string]any{"alice": map[string]any{"uid": 1001}, "bob": map[string]any{"uid": 2002, "shell": "/bin/zsh"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tree.Pillar(context.Background(), tt.minion, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("pillar\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestTopMatching(t *testing.T) {
	tree, _ := loadCase(t, "testdata/trees/formula")
	tests := []struct {
		minion Minion
		want   map[string][]string
	}{
		{Minion{ID: "web1", Grains: map[string]any{"roles": []any{"web"}}}, map[string][]string{"base": {"common", "nginx", "site"}}},
		{Minion{ID: "db1"}, map[string][]string{"base": {"common", "mongodb"}}},
		{Minion{ID: "cache1", Grains: map[string]any{"roles": "cache"}}, map[string][]string{"base": {"common"}}},
	}
	for _, tt := range tests {
		got, err := tree.Top(context.Background(), tt.minion, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: top %v, want %v", tt.minion.ID, got, tt.want)
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	a, b, outside := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "outside")
	for _, d := range []string{a, b, outside, filepath.Join(dir, "dev")} {
		if err := os.MkdirAll(filepath.Join(d, "files"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(a, "files/both"), "from a")
	write(filepath.Join(b, "files/both"), "from b")
	write(filepath.Join(b, "files/only-b"), "only b")
	write(filepath.Join(outside, "secret"), "secret")
	write(filepath.Join(dir, "dev/files/both"), "from dev")
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(a, "files/link")); err != nil {
		t.Fatal(err)
	}
	tree := &Tree{FileRoots: map[string][]string{"base": {a, b}, "dev": {filepath.Join(dir, "dev")}}}
	tests := []struct {
		env, url, want, wantErr string
	}{
		{"base", "salt://files/both", "from a", ""},
		{"base", "salt://files/only-b", "only b", ""},
		{"base", "salt://files/both?saltenv=dev", "from dev", ""},
		{"dev", "salt://files/both", "from dev", ""},
		{"", "salt:///files//both", "from a", ""},
		{"base", "salt://files/../../outside/secret", "", "'..' is not allowed"},
		{"base", "salt://files/link", "", "resolves outside its root"},
		{"base", "salt://files/missing", "", "does not exist"},
		{"base", "https://example.com/x", "", "only salt:// URLs"},
		{"nope", "salt://files/both", "", `no file roots for environment "nope"`},
	}
	for _, tt := range tests {
		got, _, err := tree.ReadFile(tt.env, tt.url)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %s: error %v, want %q", tt.env, tt.url, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s %s: %q %v, want %q", tt.env, tt.url, got, err, tt.want)
		}
	}
	_, _, err := tree.ReadFile("base", "salt://files/missing")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error does not wrap fs.ErrNotExist: %v", err)
	}
}

func TestRelativeInclude(t *testing.T) {
	tests := []struct{ sls, file, name, want, err string }{
		{"a.b", "a/b.sls", ".c", "a.c", ""},
		{"a.b", "a/b/init.sls", ".c", "a.b.c", ""},
		{"a.b", "a/b.sls", "..c", "c", ""},
		{"a", "a/init.sls", ".", "a", ""},
		{"a", "a.sls", "..x", "", "above the top"},
		{"a.b", "a/b.sls", "x.y", "x.y", ""},
	}
	for _, tt := range tests {
		got, err := resolveRelative(tt.sls, tt.file, tt.name)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s from %s: %v", tt.name, tt.sls, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s from %s (%s): %q %v, want %q", tt.name, tt.sls, tt.file, got, err, tt.want)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"a:\n  test.nop: []\n",
		"a:\n  file:\n    - managed\n    - names:\n      - x\n      - y: [{mode: 1}]\n    - require_in:\n      - b\nb:\n  test.nop:\n    - order: last\n",
		"include:\n  - .x\nextend:\n  a:\n    test:\n      - watch: [c]\n",
		"#!yaml\na: {test.nop: [{prereq: [{test: b}]}]}\nb: {test.nop: [{prereq: [{test: a}]}]}\n",
		"{% for i in range(3) %}\ns{{ i }}:\n  cmd.run:\n    - onchanges:\n      - s{{ (i + 1) % 3 }}\n{% endfor %}\n",
		"a: &x {test.nop: []}\nb: *x\n", "[1, 2]\n", "a: pkg.installed\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "fuzz.sls"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		tree := &Tree{FileRoots: map[string][]string{"base": {dir}}, Matcher: testMatcher{}}
		var chunks []state.Chunk
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			chunks, err = tree.SLS(context.Background(), Minion{ID: "m"}, []string{"fuzz"}, Options{})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("compile did not finish in 10s: %q", src)
		}
		if err != nil {
			return
		}
		checkInvariants(t, chunks)
	})
}

func TestYAMLAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		b.WriteString("a" + string(rune('0'+i%10)) + string(rune('a'+i)) + ": &a" + string(rune('a'+i)) + " [")
		prev := "a0"
		if i > 1 {
			prev = "a" + string(rune('a'+i-1))
		}
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*" + prev)
		}
		b.WriteString("]\n")
	}
	_, err := parseYAML("bomb.sls", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "alias bomb") {
		t.Fatalf("alias bomb: %v", err)
	}
}

// The master renders for many minions at once from one Tree.
func TestConcurrentHighstate(t *testing.T) {
	tree, c := loadCase(t, "testdata/trees/formula")
	want, err := run(t, tree, c)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			got, err := run(t, tree, c)
			if err == nil && !reflect.DeepEqual(got, want) {
				err = errors.New("concurrent render differs")
			}
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
