package reactor

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Rule maps an event tag glob to the reactor SLS files rendered for every
// matching event, as one entry of Salt's master `reactor:` list.
type Rule struct {
	TagGlob string
	Files   []string
}

// ParseRules reads the master config's `reactor:` value as decoded from
// YAML:
//
//	reactor:
//	  - 'salt/netapi/hook/deploy/*':
//	    - /srv/reactor/code-deploy.sls
//
// Files are absolute paths or salt:// URLs (resolved against the
// reactor's FileRoots). A single file may be given as a string.
func ParseRules(v any) ([]Rule, error) {
	if v == nil {
		return nil, nil
	}
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case []map[string]any:
		for _, m := range t {
			items = append(items, m)
		}
	default:
		return nil, fmt.Errorf("reactor: want a list of {tag glob: [files]} entries, got %s", typeName(v))
	}
	var rules []Rule
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reactor: entry %d: want {tag glob: [files]}, got %s", i+1, typeName(it))
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("reactor: entry %d is empty", i+1)
		}
		globs := make([]string, 0, len(m))
		for g := range m {
			globs = append(globs, g)
		}
		sort.Strings(globs) // several tags in one entry: keep a stable order
		for _, g := range globs {
			r, err := parseRule(g, m[g])
			if err != nil {
				return nil, fmt.Errorf("reactor: entry %d: %w", i+1, err)
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

func parseRule(glob string, files any) (Rule, error) {
	if strings.TrimSpace(glob) == "" {
		return Rule{}, errors.New("empty tag glob")
	}
	if _, err := path.Match(glob, ""); err != nil {
		return Rule{}, fmt.Errorf("tag glob %q: %w", glob, err)
	}
	r := Rule{TagGlob: glob}
	var list []any
	switch t := files.(type) {
	case string:
		list = []any{t}
	case []any:
		list = t
	case []string:
		for _, s := range t {
			list = append(list, s)
		}
	default:
		return Rule{}, fmt.Errorf("tag %q: want a list of reactor files, got %s", glob, typeName(files))
	}
	if len(list) == 0 {
		return Rule{}, fmt.Errorf("tag %q: no reactor files", glob)
	}
	for j, f := range list {
		s, ok := f.(string)
		if !ok {
			return Rule{}, fmt.Errorf("tag %q: file %d: want a path, got %s", glob, j+1, typeName(f))
		}
		if err := checkFile(s); err != nil {
			return Rule{}, fmt.Errorf("tag %q: file %d: %w", glob, j+1, err)
		}
		r.Files = append(r.Files, s)
	}
	return r, nil
}

func checkFile(s string) error {
	if rest, ok := strings.CutPrefix(s, "salt://"); ok {
		if rest == "" || strings.HasPrefix(rest, "/") || hasDotDot(rest) {
			return fmt.Errorf("%q: bad salt:// path", s)
		}
		return nil
	}
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q: reactor files must be absolute paths or salt:// URLs", s)
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case bool:
		return "a boolean"
	case int, int64, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
