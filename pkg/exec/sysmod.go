package exec

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
)

func registerSys(r *Registry) {
	r.RegisterBound("sys.list_functions", Doc{
		Summary: "List available functions, sorted. Each argument is a module name (`cmd`), a function name, or a glob (`network.ip*`).",
		Varargs: "names",
		Returns: "list",
		Example: "brinectl '*' sys.list_functions cmd 'grains.*'",
	}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		names, err := r.selectNames("sys.list_functions", a.Rest)
		if err != nil {
			return nil, err
		}
		return toAnyList(names), nil
	})

	r.RegisterBound("sys.list_modules", Doc{
		Summary: "List the modules (the part before the dot) of available functions, sorted; optional globs filter them.",
		Varargs: "names",
		Returns: "list",
	}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		seen := map[string]bool{}
		var mods []string
		for _, n := range r.Names() {
			mod, _, _ := strings.Cut(n, ".")
			if seen[mod] {
				continue
			}
			ok := len(a.Rest) == 0
			for i, p := range a.Rest {
				s, isStr := p.(string)
				if !isStr {
					return nil, badArg("sys.list_modules", "names", "item %d: expected a string, got %s", i, describe(p))
				}
				if m, _ := path.Match(s, mod); m {
					ok = true
				}
			}
			if ok {
				seen[mod] = true
				mods = append(mods, mod)
			}
		}
		sort.Strings(mods)
		return toAnyList(mods), nil
	})

	r.RegisterBound("sys.doc", Doc{
		Summary: "Return the documentation of functions as {name: text}; arguments select as in sys.list_functions, none means all.",
		Varargs: "names",
		Returns: "dict",
		Example: "brinectl '*' sys.doc cmd.run",
	}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		names, err := r.selectNames("sys.doc", a.Rest)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(names))
		for _, n := range names {
			d, _ := r.Doc(n)
			out[n] = d.Text()
		}
		return out, nil
	})
}

// selectNames applies sys.list_functions' selection: no pattern selects
// everything; "cmd" selects cmd.*; anything else is a glob or exact name.
func (r *Registry) selectNames(fun string, patterns []any) ([]string, error) {
	all := r.Names()
	if len(patterns) == 0 {
		return all, nil
	}
	var pats []string
	for i, p := range patterns {
		s, ok := p.(string)
		if !ok {
			return nil, badArg(fun, "names", "item %d: expected a string, got %s", i, describe(p))
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, badArg(fun, "names", "bad pattern %q: %v", s, err)
		}
		pats = append(pats, s)
	}
	var out []string
	for _, n := range all {
		for _, p := range pats {
			m, _ := path.Match(p, n)
			if m || n == p || (!strings.ContainsAny(p, "*?[") && strings.HasPrefix(n, p+".")) {
				out = append(out, n)
				break
			}
		}
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// Text renders the doc as plain text for sys.doc.
func (d Doc) Text() string {
	var b strings.Builder
	b.WriteString(d.Summary)
	if len(d.Args) > 0 || d.Varargs != "" || d.Kwargs {
		b.WriteString("\n\nArguments:\n")
		for _, p := range d.Args {
			fmt.Fprintf(&b, "  %s (%s, %s): %s\n", p.Name, typeName(p.Type), defaultText(p), p.Doc)
		}
		if d.Varargs != "" {
			fmt.Fprintf(&b, "  *%s: extra positional arguments\n", d.Varargs)
		}
		if d.Kwargs {
			b.WriteString("  **kwargs: extra keyword arguments\n")
		}
	}
	if d.Returns != "" {
		fmt.Fprintf(&b, "\nReturns: %s\n", d.Returns)
	}
	if d.Example != "" {
		fmt.Fprintf(&b, "\nCLI Example:\n\n    %s\n", d.Example)
	}
	return strings.TrimRight(b.String(), "\n")
}

func typeName(t Type) string {
	if t == "" {
		return string(Any)
	}
	return string(t)
}

// defaultText shows a default the way a Salt user reads it (Python
// literals: None, True, 'text').
func defaultText(p ArgDoc) string {
	if p.Required {
		return "required"
	}
	if p.KeywordOnly {
		return "keyword only, default " + pyRepr(p.Default)
	}
	return "default " + pyRepr(p.Default)
}

func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return "'" + strings.ReplaceAll(x, "'", `\'`) + "'"
	}
	return fmt.Sprint(v)
}
