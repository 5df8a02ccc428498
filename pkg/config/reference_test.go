package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md and packaging/etc/brine/* from the config definitions")

func TestEveryFieldDocumented(t *testing.T) {
	for _, r := range roots {
		if bad := undocumented(r.name, r.typ); len(bad) > 0 {
			t.Errorf("%s config fields need `doc` and `default` tags (docs/configuration.md is generated from them):\n  %s",
				r.name, strings.Join(bad, "\n  "))
		}
	}
}

// The checker itself must catch a missing or blank doc, also in nested
// structs and in maps of structs, or TestEveryFieldDocumented proves nothing.
func TestUndocumentedCatches(t *testing.T) {
	type inner struct {
		A string `yaml:"a" doc:"fine" default:""`
		B string `yaml:"b" default:"x"`
	}
	tests := []struct {
		name string
		typ  reflect.Type
		want []string
	}{
		{"all documented", reflect.TypeOf(struct {
			X int `yaml:"x" doc:"an x" default:"1"`
		}{}), nil},
		{"no doc tag", reflect.TypeOf(struct {
			X int `yaml:"x" default:"1"`
		}{}), []string{"t.x: no doc tag"}},
		{"blank doc", reflect.TypeOf(struct {
			X int `yaml:"x" doc:"  " default:"1"`
		}{}), []string{"t.x: no doc tag"}},
		{"no default tag", reflect.TypeOf(struct {
			X int `yaml:"x" doc:"an x"`
		}{}), []string{"t.x: no default tag"}},
		{"nested pointer", reflect.TypeOf(struct {
			S *inner `yaml:"s" doc:"s" default:"off"`
		}{}), []string{"t.s.b: no doc tag"}},
		{"map of structs", reflect.TypeOf(struct {
			M map[string]inner `yaml:"m" doc:"m" default:"{}"`
		}{}), []string{"t.m.<name>.b: no doc tag"}},
		{"skipped keys", reflect.TypeOf(struct {
			X int `yaml:"-"`
			y int
		}{}), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := undocumented("t", tc.typ)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("undocumented = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestGeneratedFilesUpToDate fails when a checked-in rendering differs from
// what the definitions produce now; -update rewrites them.
func TestGeneratedFilesUpToDate(t *testing.T) {
	tests := []struct {
		path string
		gen  func() string
	}{
		{"../../docs/configuration.md", Reference},
		{"../../packaging/etc/brine/master", MasterConfigFile},
		{"../../packaging/etc/brine/minion", MinionConfigFile},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			want := tc.gen()
			if *update {
				if err := os.MkdirAll(filepath.Dir(tc.path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tc.path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatalf("%v\nrun: %s", err, regenerate)
			}
			if string(got) != want {
				t.Errorf("%s is out of date with pkg/config/config.go; run: %s\nfirst difference: %s",
					strings.TrimPrefix(tc.path, "../../"), regenerate, firstDiff(string(got), want))
			}
		})
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: have %q, want %q", i+1, gl, wl)
		}
	}
	return "none"
}

// uncomment removes one leading '#' from every line of every setting block,
// the way an operator turns a default on: a block starts at a line "#key"
// (a '#' right before a non-blank, non-'#' character) and runs to the next
// blank line. Doc lines ("# text") before a block stay comments.
func uncomment(s string) string {
	lines := strings.Split(s, "\n")
	in := false
	for i, l := range lines {
		switch {
		case l == "":
			in = false
		case len(l) > 1 && l[0] == '#' && l[1] != ' ' && l[1] != '#':
			in = true
		}
		if in {
			lines[i] = strings.TrimPrefix(l, "#")
		}
	}
	return strings.Join(lines, "\n")
}

func TestUncomment(t *testing.T) {
	in := "# header: not a key\n#\n\n# doc: with colon\n#a: 1\n\n# doc\n#b:\n#  # nested doc\n#  c: 2\n"
	want := "# header: not a key\n#\n\n# doc: with colon\na: 1\n\n# doc\nb:\n  # nested doc\n  c: 2\n"
	if got := uncomment(in); got != want {
		t.Errorf("uncomment:\n%s\nwant:\n%s", got, want)
	}
}

// TestDefaultFilesLoad writes the default files, as shipped and with every
// block uncommented, and loads them with the daemons' own loaders: both must
// load, and both must give exactly the built-in defaults (the sub-sections
// that are off by default aside), so the file documents the real defaults.
func TestDefaultFilesLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "absent")
	tests := []struct {
		name string
		text string
		load func(path string) (any, error)
		// off nils out the sections the uncommented file turns on.
		off func(any) []any
	}{
		{"master", MasterConfigFile(),
			func(p string) (any, error) { c, err := LoadMaster(p, p != missing); return c, err },
			func(v any) []any {
				c := v.(Master)
				on := []any{c.Webhook, c.Cluster}
				c.Webhook, c.Cluster = nil, nil
				return append(on, c)
			}},
		{"minion", MinionConfigFile(),
			func(p string) (any, error) { c, err := LoadMinion(p, p != missing); return c, err },
			func(v any) []any { return []any{v} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, err := tc.load(missing)
			if err != nil {
				t.Fatal(err)
			}
			shipped, err := tc.load(write(tc.name, tc.text))
			if err != nil {
				t.Fatalf("default file as shipped: %v", err)
			}
			if !same(reflect.ValueOf(shipped), reflect.ValueOf(def)) {
				t.Errorf("default file as shipped loads as %+v, want the defaults %+v", shipped, def)
			}
			text := uncomment(tc.text)
			if strings.Count(text, "\n#") >= strings.Count(tc.text, "\n#") {
				t.Fatal("uncomment changed nothing")
			}
			p := write(tc.name+".uncommented", text)
			got, err := tc.load(p)
			if err != nil {
				t.Fatalf("default file with every key uncommented does not load: %v\n%s", err, text)
			}
			parts := tc.off(got)
			for _, sect := range parts[:len(parts)-1] {
				if reflect.ValueOf(sect).IsNil() {
					t.Errorf("uncommented file left a section off: %T", sect)
				}
			}
			if !same(reflect.ValueOf(parts[len(parts)-1]), reflect.ValueOf(tc.off(def)[len(parts)-1])) {
				t.Errorf("uncommented default file loads as\n%+v\nwant the built-in defaults\n%+v", parts[len(parts)-1], def)
			}
		})
	}
}

// TestDefaultTagsMatchCode decodes every literal `default` tag as YAML into
// its field's type and compares it with DefaultMaster/DefaultMinion (for
// top-level keys); keys of the optional sections must at least decode.
func TestDefaultTagsMatchCode(t *testing.T) {
	defaults := map[string]reflect.Value{
		"master": reflect.ValueOf(DefaultMaster()),
		"minion": reflect.ValueOf(DefaultMinion()),
	}
	for _, r := range roots {
		var walk func(fs []field, parent reflect.Value)
		walk = func(fs []field, parent reflect.Value) {
			for _, f := range fs {
				t.Run(r.name+"."+f.key, func(t *testing.T) {
					if isComputed(r.name, f) {
						return
					}
					if f.children != nil && f.elem == "" {
						if f.def != "off" {
							t.Errorf("default %q: an optional section's default must be \"off\"", f.def)
						}
						return
					}
					v := reflect.New(f.typ)
					var n yaml.Node
					if err := yaml.Unmarshal([]byte(f.def), &n); err != nil {
						t.Fatalf("default %q is not YAML: %v", f.def, err)
					}
					if len(n.Content) > 0 {
						if err := n.Content[0].Decode(v.Interface()); err != nil {
							t.Fatalf("default %q does not decode as %s: %v", f.def, typeName(f.typ), err)
						}
					}
					if parent.IsValid() {
						want := parent.FieldByName(fieldName(parent.Type(), f.name))
						if !same(v.Elem(), want) {
							t.Errorf("default tag %q, but the code's default is %#v: fix the tag, or list the key in `computed` (pkg/config/reference.go) if it is worked out at start-up",
								f.def, want.Interface())
						}
					}
				})
				if f.children != nil {
					walk(f.children, reflect.Value{})
				}
			}
		}
		walk(fieldsOf(r.typ, r.name, ""), defaults[r.name])
	}
}

func fieldName(t reflect.Type, yamlName string) string {
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == yamlName {
			return t.Field(i).Name
		}
	}
	return ""
}

// same is reflect.DeepEqual except that nil and empty maps, slices and
// interfaces are equal: `{}` in a file and an unset map mean the same.
func same(a, b reflect.Value) bool {
	for a.IsValid() && a.Kind() == reflect.Interface {
		a = a.Elem()
	}
	for b.IsValid() && b.Kind() == reflect.Interface {
		b = b.Elem()
	}
	if empty(a) && empty(b) {
		return true
	}
	if !a.IsValid() || !b.IsValid() || a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return same(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !same(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !same(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !same(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

func empty(v reflect.Value) bool {
	if !v.IsValid() {
		return true
	}
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}

func TestReferenceShape(t *testing.T) {
	ref := Reference()
	tests := []struct {
		name, want string
	}{
		{"nested key dotted through the map placeholder", "| `webhook.hooks.<glob>.github_secret_file` | string | `\"\"` |"},
		{"master section", "\n## master: `/etc/brine/master`\n"},
		{"minion section", "\n## minion: `/etc/brine/minion`\n"},
		{"sub-table per struct", "\n### master: `cluster`\n"},
		{"computed default described, not literal", "| `socket` | string | &lt;data_dir&gt;/control.sock |"},
		{"list default", "| `cluster.routes` | list of strings | `[]` |"},
		{"mapping type", "| `file_roots` | mapping of lists of strings | `{base: [/srv/brine/states]}` |"},
		{"scalar or list", "| `master` | string or list of strings | `salt` |"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(ref, tc.want) {
				t.Errorf("Reference() lacks %q", tc.want)
			}
		})
	}
}

func TestCellEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a | b", `a \| b`},
		{"two\nlines  and   spaces", "two lines and spaces"},
	}
	for _, tc := range tests {
		if got := cell(tc.in); got != tc.want {
			t.Errorf("cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzWrap checks the comment wrapper used for the default files: no word
// is lost, split or reordered, and no line is longer than the width unless
// it is one word that is longer by itself.
func FuzzWrap(f *testing.F) {
	for _, s := range []string{"", "a b c", "Control socket for brinectl; its file permissions (0600, owner) are the access control.", "averyveryverylongword x", "tabs\tand\nnewlines  here"} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, s string, width int) {
		if width < 1 || width > 200 {
			return
		}
		lines := wrap(s, width)
		if got, want := strings.Fields(strings.Join(lines, " ")), strings.Fields(s); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("wrap(%q, %d) words %q, want %q", s, width, got, want)
		}
		for _, l := range lines {
			if n := len([]rune(l)); n > width && len(strings.Fields(l)) > 1 {
				t.Fatalf("wrap(%q, %d): line %q is %d runes", s, width, l, n)
			}
			if l != strings.TrimSpace(l) || l == "" {
				t.Fatalf("wrap(%q, %d): untrimmed or empty line %q", s, width, l)
			}
		}
	})
}
