// Package host reads, edits and writes a hosts(5) file for host.present and
// host.absent. Lines brine does not change are written back byte for
// byte: comments, blank lines, odd spacing, CRLF endings, entries it does
// not understand and a missing final newline all survive an edit.
package host

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Line is one line of a hosts file. Raw is what was read, terminator
// included; an edited entry is re-rendered from its fields.
type Line struct {
	Raw string

	entry   bool // "IP name..." that brine may edit
	addr    netip.Addr
	ip      string // as written
	names   []string
	lead    string // whitespace before the IP
	sepIP   string // whitespace between the IP and the first name
	sepName string // whitespace between names
	comment string // from '#' on, with the whitespace before it
	eol     string // "\n", "\r\n" or "" on a last line without one
	deleted bool
}

// IP returns the address of an entry line, "" for any other line.
func (l *Line) IP() string {
	if !l.entry {
		return ""
	}
	return l.ip
}

// Names returns the host names of an entry line.
func (l *Line) Names() []string { return slices.Clone(l.names) }

func (l *Line) render() {
	var b strings.Builder
	b.WriteString(l.lead)
	b.WriteString(l.ip)
	b.WriteString(l.sepIP)
	b.WriteString(strings.Join(l.names, l.sepName))
	b.WriteString(l.comment)
	b.WriteString(l.eol)
	l.Raw = b.String()
}

// File is a parsed hosts file.
type File struct {
	Lines []*Line
}

// Parse never fails: a line that is not "IP name..." is kept verbatim and
// ignored, as the resolver ignores it.
func Parse(data []byte) *File {
	f := &File{}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var raw string
		if i < 0 {
			raw, data = string(data), nil
		} else {
			raw, data = string(data[:i+1]), data[i+1:]
		}
		f.Lines = append(f.Lines, parseLine(raw))
	}
	return f
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func parseLine(raw string) *Line {
	l := &Line{Raw: raw}
	body := raw
	switch {
	case strings.HasSuffix(body, "\r\n"):
		l.eol, body = "\r\n", body[:len(body)-2]
	case strings.HasSuffix(body, "\n"):
		l.eol, body = "\n", body[:len(body)-1]
	}
	if h := strings.IndexByte(body, '#'); h >= 0 {
		j := h
		for j > 0 && isSpace(body[j-1]) {
			j--
		}
		l.comment, body = body[j:], body[:j]
	}
	// Split keeping the whitespace runs so an edit can reuse the file's
	// own spacing.
	var fields, seps []string
	i := 0
	for i < len(body) && isSpace(body[i]) {
		i++
	}
	l.lead = body[:i]
	for i < len(body) {
		j := i
		for j < len(body) && !isSpace(body[j]) {
			j++
		}
		fields = append(fields, body[i:j])
		k := j
		for k < len(body) && isSpace(body[k]) {
			k++
		}
		seps = append(seps, body[j:k])
		i = k
	}
	if len(fields) < 2 {
		return l
	}
	addr, err := netip.ParseAddr(fields[0])
	if err != nil {
		return l
	}
	for _, n := range fields[1:] {
		if validName(n) != nil {
			// Leave lines holding names we could not write back alone.
			return l
		}
	}
	if seps[len(seps)-1] != "" {
		// Trailing blanks: keep them by folding them into the comment.
		l.comment = seps[len(seps)-1] + l.comment
	}
	l.entry, l.addr, l.ip, l.names = true, addr, fields[0], fields[1:]
	l.sepIP, l.sepName = seps[0], " "
	if len(fields) > 2 {
		l.sepName = seps[1]
	}
	return l
}

// Bytes renders the file.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.Lines {
		if !l.deleted {
			b.WriteString(l.Raw)
		}
	}
	return b.Bytes()
}

// Clone returns a deep copy, so a Check can edit without touching f.
func (f *File) Clone() *File {
	c := &File{Lines: make([]*Line, len(f.Lines))}
	for i, l := range f.Lines {
		cp := *l
		cp.names = slices.Clone(l.names)
		c.Lines[i] = &cp
	}
	return c
}

// validName accepts what resolvers accept in a hosts file and nothing
// that could break the line apart or start a comment.
func validName(n string) error {
	if n == "" || len(n) > 253 {
		return fmt.Errorf("host name %q: empty or longer than 253 bytes", n)
	}
	if n[0] == '-' || n[0] == '.' {
		return fmt.Errorf("host name %q: must start with a letter, digit or '_'", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
		if !ok {
			return fmt.Errorf("host name %q: invalid character %q", n, c)
		}
	}
	return nil
}

// Changes is what an edit did, as Salt reports it: ip -> names.
type Changes struct {
	Added   map[string][]string
	Removed map[string][]string
	// Method is how Update wrote the file when that is worth telling:
	// "" for the usual atomic rename, MethodInPlace for a bind mount.
	Method string
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return len(c.Added) == 0 && len(c.Removed) == 0 }

// Map is the Salt changes dict: {"added": {ip: [names]}, "removed": {...}}.
func (c Changes) Map() map[string]any {
	m := map[string]any{}
	conv := func(in map[string][]string) map[string]any {
		out := map[string]any{}
		for k, v := range in {
			l := make([]any, len(v))
			for i, s := range v {
				l[i] = s
			}
			out[k] = l
		}
		return out
	}
	if len(c.Added) > 0 {
		m["added"] = conv(c.Added)
	}
	if len(c.Removed) > 0 {
		m["removed"] = conv(c.Removed)
	}
	return m
}

func (c *Changes) add(kind *map[string][]string, ip, name string) {
	if *kind == nil {
		*kind = map[string][]string{}
	}
	if !slices.Contains((*kind)[ip], name) {
		(*kind)[ip] = append((*kind)[ip], name)
	}
}

// Edit is one host.present or host.absent call.
type Edit struct {
	Absent bool
	Name   string
	IPs    []string // present: required; absent: empty means every IP
	Clean  bool     // present: remove Name from IPs not listed
}

func (e Edit) validate() ([]netip.Addr, error) {
	if err := validName(e.Name); err != nil {
		return nil, err
	}
	if !e.Absent && len(e.IPs) == 0 {
		return nil, fmt.Errorf("host.present %s: ip is required", e.Name)
	}
	addrs := make([]netip.Addr, len(e.IPs))
	for i, s := range e.IPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("host %s: ip %q: %w", e.Name, s, err)
		}
		addrs[i] = a
	}
	return addrs, nil
}

// Apply performs e on f in memory.
func (f *File) Apply(e Edit) (Changes, error) {
	addrs, err := e.validate()
	if err != nil {
		return Changes{}, err
	}
	var ch Changes
	has := func(l *Line) bool {
		for _, n := range l.names {
			if strings.EqualFold(n, e.Name) {
				return true
			}
		}
		return false
	}
	listed := func(a netip.Addr) bool { return slices.Contains(addrs, a) }
	live := func(yield func(*Line) bool) {
		for _, l := range f.Lines {
			if l.entry && !l.deleted && !yield(l) {
				return
			}
		}
	}
	remove := func(l *Line) {
		kept := l.names[:0:0]
		for _, n := range l.names {
			if strings.EqualFold(n, e.Name) {
				ch.add(&ch.Removed, l.ip, n)
			} else {
				kept = append(kept, n)
			}
		}
		l.names = kept
		if len(kept) == 0 {
			l.deleted = true
			return
		}
		l.render()
	}
	if e.Absent {
		for l := range live {
			if (len(addrs) == 0 || listed(l.addr)) && has(l) {
				remove(l)
			}
		}
		return ch, nil
	}
	for i, a := range addrs {
		var first *Line
		found := false
		for l := range live {
			if l.addr != a {
				continue
			}
			if first == nil {
				first = l
			}
			if has(l) {
				found = true
				break
			}
		}
		if found {
			continue
		}
		ch.add(&ch.Added, e.IPs[i], e.Name)
		if first != nil {
			first.names = append(first.names, e.Name)
			first.render()
			continue
		}
		f.appendEntry(e.IPs[i], a, e.Name)
	}
	if e.Clean {
		for l := range live {
			if !listed(l.addr) && has(l) {
				remove(l)
			}
		}
	}
	return ch, nil
}

func (f *File) appendEntry(ip string, a netip.Addr, name string) {
	eol := "\n"
	var last *Line
	for _, l := range f.Lines {
		if l.deleted {
			continue
		}
		last = l
		if l.eol != "" {
			eol = l.eol
		}
	}
	if last != nil && last.eol == "" {
		// Finish the unterminated last line before adding ours.
		last.eol = eol
		last.Raw += eol
	}
	l := &Line{entry: true, addr: a, ip: ip, names: []string{name}, sepIP: "\t", sepName: " ", eol: eol}
	l.render()
	f.Lines = append(f.Lines, l)
}
