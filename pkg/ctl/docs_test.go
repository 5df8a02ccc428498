package ctl

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// committedDocs is where `brinectl docs` output is kept in the repository.
const committedDocs = "../../docs/brinectl"

// handWritten files in docs/brinectl are not generated.
var handWritten = map[string]bool{"README.md": true}

func TestCommittedDocsUpToDate(t *testing.T) {
	gen := t.TempDir()
	r := cli(t, nil, "docs", "--dir", gen)
	if r.code != 0 {
		t.Fatalf("docs: exit %d: %s", r.code, r.stderr)
	}
	generated := readTree(t, gen)
	committed := readTree(t, committedDocs)
	for name := range handWritten {
		delete(committed, name)
	}
	if len(generated) < 20 {
		t.Fatalf("only %d files generated", len(generated))
	}
	const fix = "regenerate with: go run ./cmd/ctl docs --dir docs/brinectl"
	for name, want := range generated {
		got, ok := committed[name]
		switch {
		case !ok:
			t.Errorf("docs/brinectl/%s is missing; %s", name, fix)
		case !bytes.Equal(got, want):
			t.Errorf("docs/brinectl/%s is out of date; %s", name, fix)
		}
	}
	for name := range committed {
		if _, ok := generated[name]; !ok {
			t.Errorf("docs/brinectl/%s is no longer generated; delete it", name)
		}
	}
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
