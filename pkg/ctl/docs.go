package ctl

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// docsDate is printed in the man pages' footer. It is fixed, not today,
// so that regenerating unchanged docs gives identical files and the
// committed docs can be checked by a test.
var docsDate = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

func (a *app) docsCmd(root *cobra.Command) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "docs --dir DIR",
		Short: "Write brinectl's reference as markdown (DIR) and man pages (DIR/man)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageErr("--dir is required")
			}
			if err := GenerateDocs(root, dir); err != nil {
				return failErr(err)
			}
			fmt.Fprintf(a.env.Stdout, "wrote markdown to %s and man pages to %s\n", dir, filepath.Join(dir, "man"))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write into (created if missing)")
	return cmd
}

// GenerateDocs writes one markdown file per command into dir and section 1
// man pages into dir/man.
func GenerateDocs(root *cobra.Command, dir string) error {
	manDir := filepath.Join(dir, "man")
	if err := os.MkdirAll(manDir, 0o755); err != nil {
		return fmt.Errorf("create docs directory: %w", err)
	}
	root.DisableAutoGenTag = true
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		return fmt.Errorf("generate markdown into %s: %w", dir, err)
	}
	header := &doc.GenManHeader{Title: "BRINECTL", Section: "1", Source: "brine", Manual: "brine manual", Date: &docsDate}
	if err := doc.GenManTree(root, header, manDir); err != nil {
		return fmt.Errorf("generate man pages into %s: %w", manDir, err)
	}
	return nil
}
