package config

import (
	"fmt"
	"reflect"
	"strings"
)

// The documentation of every key lives in the struct tags of this package,
// so docs/configuration.md and the default files under packaging/etc/brine
// are rendered from those tags and a test compares the checked-in copies
// with the rendering. Regenerate them with:
//
//	go test ./pkg/config -update
const regenerate = "go test ./pkg/config -update"

// computed lists the defaults that are worked out at start-up rather than
// written literally in the `default` tag. The default files leave such a key
// empty (`#socket:`), which YAML reads as null and the loader as "not set",
// so uncommenting it keeps the computed value. A tag that is neither literal
// nor listed here fails TestDefaultTagsMatchCode.
var computed = map[string]string{
	"master.socket": "worked out at start-up from data_dir",
	"minion.id":     "the system's hostname (os.Hostname) at start-up",
}

// placeholders names the key of each map whose values are structs, for
// dotted keys such as webhook.hooks.<glob>.github_secret_file.
var placeholders = map[string]string{
	"master.webhook.hooks": "<glob>",
}

// root is one configuration file.
type root struct {
	name   string // "master" or "minion": the prefix of computed/placeholders keys
	path   string // where the packages install it
	typ    reflect.Type
	reload string // how a change takes effect, for the file header
}

var roots = []root{
	{name: "master", path: "/etc/brine/master", typ: reflect.TypeOf(Master{}),
		reload: "`systemctl reload brine-master` (SIGHUP) applies reactor, file_roots,\npillar_roots, mine_functions and mine_interval without dropping minions;\nother keys need `systemctl restart brine-master`."},
	{name: "minion", path: "/etc/brine/minion", typ: reflect.TypeOf(Minion{}),
		reload: "Changes take effect with `systemctl restart brine-minion`."},
}

// field is one key of a configuration file, with its sub-keys when its
// value is a mapping of known keys.
type field struct {
	key      string // dotted from the file's top, e.g. webhook.hooks.<glob>.allow_sha1
	name     string // the YAML key
	typ      reflect.Type
	doc, def string
	hasDef   bool
	// children are the keys of a struct value, or of each value of a map
	// of structs (then elem is the map key placeholder).
	children []field
	elem     string
}

// fieldsOf lists the YAML keys of struct type t. rootName and prefix build
// the keys looked up in computed and placeholders.
func fieldsOf(t reflect.Type, rootName, prefix string) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name) // yaml.v3's own default
		}
		def, hasDef := sf.Tag.Lookup("default")
		f := field{key: prefix + name, name: name, typ: sf.Type, doc: sf.Tag.Get("doc"), def: def, hasDef: hasDef}
		switch et := deref(sf.Type); {
		case et.Kind() == reflect.Struct:
			f.children = fieldsOf(et, rootName, f.key+".")
		case et.Kind() == reflect.Map && deref(et.Elem()).Kind() == reflect.Struct:
			f.elem = placeholders[rootName+"."+f.key]
			if f.elem == "" {
				f.elem = "<name>"
			}
			f.children = fieldsOf(deref(et.Elem()), rootName, f.key+"."+f.elem+".")
		}
		out = append(out, f)
	}
	return out
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// undocumented returns the keys of t (recursively) that lack a non-empty
// doc tag or a default tag.
func undocumented(rootName string, t reflect.Type) []string {
	var bad []string
	var walk func([]field)
	walk = func(fs []field) {
		for _, f := range fs {
			switch {
			case strings.TrimSpace(f.doc) == "":
				bad = append(bad, rootName+"."+f.key+": no doc tag")
			case !f.hasDef:
				bad = append(bad, rootName+"."+f.key+": no default tag")
			}
			walk(f.children)
		}
	}
	walk(fieldsOf(t, rootName, ""))
	return bad
}

// typeName is the type as an operator reads it.
func typeName(t reflect.Type) string {
	if t == reflect.TypeOf(StringList(nil)) {
		return "string or list of strings"
	}
	switch t.Kind() {
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Struct {
			return "mapping"
		}
		return typeName(t.Elem())
	case reflect.Struct:
		return "mapping"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Interface:
		return "any YAML"
	case reflect.Slice:
		return "list of " + plural(typeName(t.Elem()))
	case reflect.Map:
		if deref(t.Elem()).Kind() == reflect.Struct {
			return "mapping of mappings"
		}
		if t.Elem().Kind() == reflect.Interface {
			return "mapping"
		}
		return "mapping of " + plural(typeName(t.Elem()))
	}
	return t.String()
}

func plural(s string) string {
	switch {
	case strings.HasPrefix(s, "list of "):
		return "lists of " + strings.TrimPrefix(s, "list of ")
	case strings.HasPrefix(s, "mapping"):
		return "mappings" + strings.TrimPrefix(s, "mapping")
	case strings.HasSuffix(s, "YAML"):
		return s + " values"
	}
	return s + "s"
}

// isComputed reports whether f's default is described rather than literal.
func isComputed(rootName string, f field) bool {
	_, ok := computed[rootName+"."+f.key]
	return ok
}

// Reference renders docs/configuration.md: every key of /etc/brine/master
// and /etc/brine/minion with its type, default and description.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from the definitions in pkg/config/config.go; do not edit.
     Regenerate with: ` + regenerate + ` -->

brine-master reads ` + "`/etc/brine/master`" + ` and brine-minion reads ` + "`/etc/brine/minion`" + `
(` + "`--config`/`-c`" + ` chooses another file). Both are YAML. The packages install
both files with every key present and commented out, set to its default.

**The same as Salt:** the key names, wherever Salt has the same setting
(` + "`interface`, `file_roots`, `pillar_roots`, `auto_accept`, `keep_jobs`, `reactor`,\n`mine_functions`, `master`, `id`, `grains`, `master_finger`, `autosign_token`" + ` ...), and
their units: ` + "`keep_jobs`" + ` is in hours, ` + "`mine_interval`" + ` in minutes and
` + "`recon_default`/`recon_max`" + ` in milliseconds. A list under ` + "`master`" + ` is failover, in order.

**Different from Salt:**
- A value of the wrong type, a key within two edits of a known one (a typo
  such as ` + "`auto_acept`" + `) and any unknown key of the minion file or inside a
  known section are errors that name the file, line and key. Other unknown
  top-level keys of the master file are kept, as Salt keeps them, in the
  ` + "`__opts__`" + ` that #!py files see (e.g. ` + "`github: {webhook-key: ...}`" + `).
- There is no ` + "`include`/`default_include`" + `. Each daemon reads one file.
- ` + "`master_finger`" + ` is the SHA-256 fingerprint of the master's TLS certificate
  (` + "`brinectl key finger`" + ` prints it). It is not Salt's hash of the RSA key.
- ` + "`systemctl reload brine-master`" + ` (SIGHUP) re-reads the reactor, file_roots,
  pillar_roots and the mine settings without dropping minions. Any other key
  needs a restart. See [install.md](install.md).

A dotted key such as ` + "`webhook.listen`" + ` is a key nested under its parent:

` + "```yaml\nwebhook:\n  listen: 0.0.0.0:8000\n```" + `
`)
	for _, r := range roots {
		fmt.Fprintf(&b, "\n## %s: `%s`\n", r.name, r.path)
		writeTables(&b, r.name, "", fieldsOf(r.typ, r.name, ""))
	}
	return b.String()
}

// writeTables writes one table for fs and then a section for each key of fs
// whose value is a mapping of known keys.
func writeTables(b *strings.Builder, rootName, heading string, fs []field) {
	if heading != "" {
		fmt.Fprintf(b, "\n### %s: `%s`\n", rootName, heading)
	}
	b.WriteString("\n| key | type | default | description |\n|---|---|---|---|\n")
	for _, f := range fs {
		desc := f.doc
		if note, ok := computed[rootName+"."+f.key]; ok {
			desc += " Default: " + note + "."
		}
		if f.children != nil {
			sub := f.key
			if f.elem != "" {
				sub += "." + f.elem
			}
			desc += fmt.Sprintf(" Keys: see `%s` below.", sub)
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", f.key, typeName(f.typ), cellDefault(rootName, f), cell(desc))
	}
	for _, f := range fs {
		if f.children == nil {
			continue
		}
		sub := f.key
		if f.elem != "" {
			sub += "." + f.elem
		}
		writeTables(b, rootName, sub, f.children)
	}
}

func cellDefault(rootName string, f field) string {
	switch {
	case isComputed(rootName, f) || (f.children != nil && f.elem == ""):
		// Described, not literal: plain text, but keep <data_dir> visible.
		return cell(strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(f.def))
	case f.def == "" && deref(f.typ).Kind() == reflect.String:
		return "`\"\"`"
	}
	return "`" + strings.ReplaceAll(f.def, "|", `\|`) + "`"
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// MasterConfigFile renders packaging/etc/brine/master, the master's default
// configuration: every key commented out at its default, its doc above it.
func MasterConfigFile() string { return configFile(roots[0]) }

// MinionConfigFile renders packaging/etc/brine/minion.
func MinionConfigFile() string { return configFile(roots[1]) }

// configFile writes each key as a block: its doc as "# " comments, then the
// key and any nested keys, every line commented with one leading '#'.
// Removing that one '#' from each line of a block (the way operators
// uncomment Salt's /etc/salt/master) gives valid YAML that sets the
// default, which the tests check by uncommenting every block.
func configFile(r root) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: configuration of brine-%s.\n#\n", r.path, r.name)
	unknown := "An unknown key is an error that names its line."
	if r.name == "master" {
		unknown = "A misspelt key is an error that names its line; other top-level keys of your own are kept for #!py files' __opts__, as Salt does."
	}
	for _, l := range []string{
		"Every key is listed below, set to its default and commented out. To change a key, uncomment its block by removing one leading '#' from each line.",
		"Key names are Salt's wherever Salt has the same setting. " + unknown,
		"Reference: docs/configuration.md. This file is generated from pkg/config/config.go (" + regenerate + ").",
	} {
		for _, w := range wrap(l, 76) {
			b.WriteString("# " + w + "\n")
		}
	}
	b.WriteString("#\n")
	for _, l := range strings.Split(r.reload, "\n") {
		b.WriteString("# " + l + "\n")
	}
	for _, f := range fieldsOf(r.typ, r.name, "") {
		b.WriteString("\n")
		for _, l := range docLines(r.name, f, "") {
			b.WriteString(l + "\n")
		}
		for _, l := range valueLines(r.name, f, "") {
			b.WriteString("#" + l + "\n")
		}
	}
	return b.String()
}

// docLines is f's doc wrapped as YAML comments at indent.
func docLines(rootName string, f field, indent string) []string {
	text := f.doc
	switch {
	case isComputed(rootName, f):
		text += " Default: " + computed[rootName+"."+f.key] + "; leaving the key empty keeps it."
	case f.children != nil && f.elem == "":
		text += " Default: " + f.def + "; uncomment the block to turn it on."
	case f.elem != "":
		text += " Default: " + f.def + "; one entry is shown, with " + f.elem + " standing for the key."
	}
	var out []string
	for _, w := range wrap(text, 76-len(indent)) {
		out = append(out, indent+"# "+w)
	}
	return out
}

// valueLines is f as YAML, uncommented, at indent; nested keys carry their
// docs as indented comments so that the block stays one piece.
func valueLines(rootName string, f field, indent string) []string {
	switch {
	case isComputed(rootName, f):
		return []string{indent + f.name + ":"}
	case f.children == nil && f.def == "" && deref(f.typ).Kind() == reflect.String:
		return []string{indent + f.name + `: ""`}
	case f.children == nil && f.def == "":
		return []string{indent + f.name + ":"}
	case f.children == nil:
		return []string{indent + f.name + ": " + f.def}
	}
	out := []string{indent + f.name + ":"}
	inner := indent + "  "
	if f.elem != "" {
		out = append(out, inner+f.elem+":")
		inner += "  "
	}
	for _, c := range f.children {
		out = append(out, docLines(rootName, c, inner)...)
		out = append(out, valueLines(rootName, c, inner)...)
	}
	return out
}

// wrap breaks s into lines of at most width runes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
