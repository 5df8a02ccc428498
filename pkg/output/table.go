package output

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Table writes rows under an upper-case header, columns aligned with three
// spaces between them. Cells are sanitized; tabs and newlines inside a cell
// become spaces so they cannot break the alignment.
func Table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	clean := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	write := func(cells []string) error {
		out := make([]string, len(cells))
		for i, c := range cells {
			out[i] = clean.Replace(Sanitize(c))
			if out[i] == "" {
				out[i] = "-"
			}
		}
		_, err := fmt.Fprintln(tw, strings.Join(out, "\t"))
		return err
	}
	if err := write(header); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, r := range rows {
		if err := write(r); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}
