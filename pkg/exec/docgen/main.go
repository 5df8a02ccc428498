// Command docgen rewrites the generated reference in docs/functions.md from
// the registry's Docs. Run from the repository root:
//
//	go run ./pkg/exec/docgen
//
// pkg/exec's tests fail while the file is out of date.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/brine-cm/brine/pkg/exec"
)

func main() {
	path := flag.String("o", "docs/functions.md", "markdown file to update")
	flag.Parse()
	old, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	out, err := exec.SpliceGenerated(string(old), exec.NewRegistry().Markdown())
	if err != nil {
		fmt.Fprintf(os.Stderr, "docgen: %s: %v\n", *path, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*path, []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}
