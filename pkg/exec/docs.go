package exec

import (
	"errors"
	"fmt"
	"strings"
)

// Markers delimit the generated part of docs/functions.md; text outside
// them is written by hand and kept.
const (
	DocBegin = "<!-- BEGIN GENERATED: go run ./pkg/exec/docgen -->"
	DocEnd   = "<!-- END GENERATED -->"
)

// Markdown renders the reference of every registered function, grouped by
// module, for docs/functions.md.
func (r *Registry) Markdown() string {
	var b strings.Builder
	names := r.Names()
	var mods []string
	byMod := map[string][]string{}
	for _, n := range names {
		mod, _, _ := strings.Cut(n, ".")
		if byMod[mod] == nil {
			mods = append(mods, mod)
		}
		byMod[mod] = append(byMod[mod], n)
	}
	b.WriteString("Modules: ")
	for i, m := range mods {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%s](#%s)", m, m)
	}
	b.WriteString("\n")
	for _, m := range mods {
		fmt.Fprintf(&b, "\n## %s\n", m)
		for _, n := range byMod[m] {
			d, _ := r.Doc(n)
			fmt.Fprintf(&b, "\n### %s\n\n%s\n", n, d.Summary)
			if len(d.Args) > 0 {
				b.WriteString("\n| Argument | Type | Default | Description |\n|---|---|---|---|\n")
				for _, p := range d.Args {
					def := "required"
					if !p.Required {
						def = "`" + pyRepr(p.Default) + "`"
						if p.KeywordOnly {
							def += " (keyword only)"
						}
					}
					fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.Name, cell(typeName(p.Type)), def, cell(p.Doc))
				}
			}
			if d.Varargs != "" {
				fmt.Fprintf(&b, "\nExtra positional arguments are taken as `*%s`.\n", d.Varargs)
			}
			if d.Kwargs {
				b.WriteString("\nExtra keyword arguments are accepted.\n")
			}
			if d.Returns != "" {
				fmt.Fprintf(&b, "\nReturns: %s\n", d.Returns)
			}
			if d.Example != "" {
				fmt.Fprintf(&b, "\n```\n%s\n```\n", d.Example)
			}
		}
	}
	return b.String()
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

// SpliceGenerated replaces the text between DocBegin and DocEnd in doc
// with generated.
func SpliceGenerated(doc, generated string) (string, error) {
	i := strings.Index(doc, DocBegin)
	j := strings.Index(doc, DocEnd)
	if i < 0 || j < 0 || j < i {
		return "", errors.New("markers " + DocBegin + " ... " + DocEnd + " not found in order")
	}
	return doc[:i+len(DocBegin)] + "\n\n" + generated + "\n" + doc[j:], nil
}
