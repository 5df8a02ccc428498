package pyrender

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// moduleNames are the Python modules a #!py file may import, each built
// from Go. Nothing here reaches files, processes or the network.
var moduleNames = map[string]func() *starlarkstruct.Module{
	"hashlib": hashlibModule,
	"hmac":    hmacModule,
	"json":    jsonModule,
	"base64":  base64Module,
	"re":      reModule,
	"os":      osModule,
	"os.path": osPathModule,
	"time":    timeModule,
}

// modules are built once: they hold only immutable builtins.
var modules = func() map[string]*starlarkstruct.Module {
	out := map[string]*starlarkstruct.Module{}
	for name, mk := range moduleNames {
		m := mk()
		m.Freeze()
		out[name] = m
	}
	return out
}()

func moduleHas(mod, name string) bool {
	_, ok := modules[mod].Members[name]
	return ok
}

func moduleMembers(mod string) []string {
	names := modules[mod].Members.Keys()
	sort.Strings(names)
	return names
}

var importBuiltin = starlark.NewBuiltin("__import__", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &name); err != nil {
		return nil, err
	}
	m, ok := modules[name]
	if !ok {
		return nil, fmt.Errorf("module %s is not available in #!py (brine provides %s)", name, strings.Join(availableModules(), ", "))
	}
	return m, nil
})

func module(name string, members starlark.StringDict) *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: name, Members: members}
}

func builtin(name string, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
	return starlark.NewBuiltin(name, fn)
}

// bytesArg takes str or bytes, as Python 2 code passes str where Python 3
// wants bytes (hmac.new(key, body, ...) with plain strings).
func bytesArg(fn string, v starlark.Value) ([]byte, error) {
	switch x := v.(type) {
	case starlark.String:
		return []byte(x), nil
	case starlark.Bytes:
		return []byte(x), nil
	case starlark.NoneType:
		return nil, fmt.Errorf("%s: got None where a string was expected (a missing key or header?)", fn)
	}
	return nil, fmt.Errorf("%s: want str or bytes, got %s", fn, v.Type())
}

// ---- hashlib ----

var hashAlgos = map[string]func() hash.Hash{
	"md5": md5.New, "sha1": sha1.New, "sha224": sha256.New224, "sha256": sha256.New,
	"sha384": sha512.New384, "sha512": sha512.New,
}

// hashObject is hashlib's hash object: update, digest, hexdigest, copy.
type hashObject struct {
	name string
	h    hash.Hash
}

func (o *hashObject) String() string        { return fmt.Sprintf("<%s HASH object>", o.name) }
func (o *hashObject) Type() string          { return "hash" }
func (o *hashObject) Freeze()               {}
func (o *hashObject) Truth() starlark.Bool  { return true }
func (o *hashObject) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: hash object") }
func (o *hashObject) AttrNames() []string {
	return []string{"block_size", "copy", "digest", "digest_size", "hexdigest", "name", "update"}
}

func (o *hashObject) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(o.name), nil
	case "digest_size":
		return starlark.MakeInt(o.h.Size()), nil
	case "block_size":
		return starlark.MakeInt(o.h.BlockSize()), nil
	case "update":
		return builtin("update", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &v); err != nil {
				return nil, err
			}
			p, err := bytesArg("update", v)
			if err != nil {
				return nil, err
			}
			o.h.Write(p)
			return starlark.None, nil
		}), nil
	case "digest":
		return builtin("digest", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 0); err != nil {
				return nil, err
			}
			return starlark.String(o.h.Sum(nil)), nil // Python 2: digest() is a str
		}), nil
	case "hexdigest":
		return builtin("hexdigest", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 0); err != nil {
				return nil, err
			}
			return starlark.String(hex.EncodeToString(o.h.Sum(nil))), nil
		}), nil
	case "copy":
		return builtin("copy", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			// Hash states in the standard library implement BinaryMarshaler.
			type marshaler interface {
				MarshalBinary() ([]byte, error)
				UnmarshalBinary([]byte) error
			}
			src, ok := o.h.(marshaler)
			if !ok {
				return nil, fmt.Errorf("copy: %s cannot be copied", o.name)
			}
			state, err := src.MarshalBinary()
			if err != nil {
				return nil, err
			}
			n := o.newSame()
			if err := n.h.(marshaler).UnmarshalBinary(state); err != nil {
				return nil, err
			}
			return n, nil
		}), nil
	}
	return nil, nil
}

func (o *hashObject) newSame() *hashObject {
	if mk, ok := hashAlgos[o.name]; ok {
		return &hashObject{name: o.name, h: mk()}
	}
	return &hashObject{name: o.name, h: o.h} // hmac objects are not copied
}

func hashConstructor(name string) *starlark.Builtin {
	return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var data starlark.Value
		if err := starlark.UnpackArgs(b.Name(), args, kw, "string?", &data); err != nil {
			return nil, err
		}
		o := &hashObject{name: name, h: hashAlgos[name]()}
		if data != nil {
			p, err := bytesArg(name, data)
			if err != nil {
				return nil, err
			}
			o.h.Write(p)
		}
		return o, nil
	})
}

func hashlibModule() *starlarkstruct.Module {
	m := starlark.StringDict{}
	names := make([]string, 0, len(hashAlgos))
	for name := range hashAlgos {
		m[name] = hashConstructor(name)
		names = append(names, name)
	}
	sort.Strings(names)
	l := make([]starlark.Value, len(names))
	for i, n := range names {
		l[i] = starlark.String(n)
	}
	m["algorithms_available"] = starlark.Tuple(l)
	m["algorithms_guaranteed"] = starlark.Tuple(l)
	m["new"] = builtin("new", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var name string
		var data starlark.Value
		if err := starlark.UnpackArgs(b.Name(), args, kw, "name", &name, "string?", &data); err != nil {
			return nil, err
		}
		mk, ok := hashAlgos[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("hashlib.new: unsupported hash type %q", name)
		}
		o := &hashObject{name: strings.ToLower(name), h: mk()}
		if data != nil {
			p, err := bytesArg("hashlib.new", data)
			if err != nil {
				return nil, err
			}
			o.h.Write(p)
		}
		return o, nil
	})
	return module("hashlib", m)
}

// ---- hmac ----

func hmacModule() *starlarkstruct.Module {
	return module("hmac", starlark.StringDict{
		"new": builtin("new", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var key, msg, digestmod starlark.Value
			if err := starlark.UnpackArgs("hmac.new", args, kw, "key", &key, "msg?", &msg, "digestmod?", &digestmod); err != nil {
				return nil, err
			}
			k, err := bytesArg("hmac.new key", key)
			if err != nil {
				return nil, err
			}
			// Python 2's default digest was md5; Python 3.8 made it
			// mandatory. Keep the Python 2 default for old files.
			algo := "md5"
			switch d := digestmod.(type) {
			case nil, starlark.NoneType:
			case starlark.String:
				algo = strings.ToLower(string(d))
			case *starlark.Builtin:
				algo = d.Name()
			default:
				return nil, fmt.Errorf("hmac.new: digestmod must be a hashlib constructor or a name, got %s", digestmod.Type())
			}
			mk, ok := hashAlgos[algo]
			if !ok {
				return nil, fmt.Errorf("hmac.new: unsupported digestmod %q", algo)
			}
			o := &hashObject{name: "hmac-" + algo, h: hmac.New(mk, k)}
			if msg != nil && msg != starlark.None {
				p, err := bytesArg("hmac.new msg", msg)
				if err != nil {
					return nil, err
				}
				o.h.Write(p)
			}
			return o, nil
		}),
		"compare_digest": builtin("compare_digest", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var a, c starlark.Value
			if err := starlark.UnpackPositionalArgs("hmac.compare_digest", args, kw, 2, &a, &c); err != nil {
				return nil, err
			}
			x, err := bytesArg("hmac.compare_digest", a)
			if err != nil {
				return nil, err
			}
			y, err := bytesArg("hmac.compare_digest", c)
			if err != nil {
				return nil, err
			}
			return starlark.Bool(subtle.ConstantTimeCompare(x, y) == 1), nil
		}),
	})
}

// ---- base64 ----

func base64Module() *starlarkstruct.Module {
	enc := func(name string, e *base64.Encoding) *starlark.Builtin {
		return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackPositionalArgs("base64."+name, args, kw, 1, &v); err != nil {
				return nil, err
			}
			p, err := bytesArg("base64."+name, v)
			if err != nil {
				return nil, err
			}
			return starlark.String(e.EncodeToString(p)), nil
		})
	}
	dec := func(name string, e *base64.Encoding) *starlark.Builtin {
		return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackPositionalArgs("base64."+name, args, kw, 1, &v); err != nil {
				return nil, err
			}
			p, err := bytesArg("base64."+name, v)
			if err != nil {
				return nil, err
			}
			out, err := e.DecodeString(strings.TrimSpace(string(p)))
			if err != nil {
				return nil, fmt.Errorf("base64.%s: %w", name, err)
			}
			return starlark.String(out), nil
		})
	}
	return module("base64", starlark.StringDict{
		"b64encode": enc("b64encode", base64.StdEncoding), "b64decode": dec("b64decode", base64.StdEncoding),
		"standard_b64encode": enc("standard_b64encode", base64.StdEncoding), "standard_b64decode": dec("standard_b64decode", base64.StdEncoding),
		"urlsafe_b64encode": enc("urlsafe_b64encode", base64.URLEncoding), "urlsafe_b64decode": dec("urlsafe_b64decode", base64.URLEncoding),
		"encodestring": enc("encodestring", base64.StdEncoding), "decodestring": dec("decodestring", base64.StdEncoding),
	})
}

// ---- os.path (pure string functions, POSIX) ----

func osPathModule() *starlarkstruct.Module {
	str1 := func(name string, f func(string) starlark.Value) *starlark.Builtin {
		return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var s string
			if err := starlark.UnpackPositionalArgs("os.path."+name, args, kw, 1, &s); err != nil {
				return nil, err
			}
			return f(s), nil
		})
	}
	return module("os.path", starlark.StringDict{
		"sep": starlark.String("/"),
		"join": builtin("join", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			if len(kw) > 0 || len(args) == 0 {
				return nil, fmt.Errorf("os.path.join: want one or more path strings")
			}
			out := ""
			for i, a := range args {
				s, ok := starlark.AsString(a)
				if !ok {
					return nil, fmt.Errorf("os.path.join: argument %d is %s, not str", i+1, a.Type())
				}
				// Python: an absolute component discards what came before.
				switch {
				case strings.HasPrefix(s, "/") || i == 0:
					out = s
				case out == "" || strings.HasSuffix(out, "/"):
					out += s
				default:
					out += "/" + s
				}
			}
			return starlark.String(out), nil
		}),
		"basename": str1("basename", func(s string) starlark.Value { return starlark.String(s[strings.LastIndexByte(s, '/')+1:]) }),
		"dirname": str1("dirname", func(s string) starlark.Value {
			i := strings.LastIndexByte(s, '/') + 1
			head := s[:i]
			if head != "" && strings.Trim(head, "/") != "" {
				head = strings.TrimRight(head, "/")
			}
			return starlark.String(head)
		}),
		"splitext": str1("splitext", func(s string) starlark.Value {
			base := s[strings.LastIndexByte(s, '/')+1:]
			// Leading dots belong to the name: splitext('.bashrc') has no extension.
			dot := strings.LastIndexByte(base, '.')
			if dot <= 0 || strings.Trim(base[:dot], ".") == "" {
				return starlark.Tuple{starlark.String(s), starlark.String("")}
			}
			cut := len(s) - len(base) + dot
			return starlark.Tuple{starlark.String(s[:cut]), starlark.String(s[cut:])}
		}),
		"normpath": str1("normpath", func(s string) starlark.Value {
			if s == "" {
				return starlark.String(".")
			}
			return starlark.String(path.Clean(s))
		}),
		"isabs": str1("isabs", func(s string) starlark.Value { return starlark.Bool(strings.HasPrefix(s, "/")) }),
	})
}

func osModule() *starlarkstruct.Module {
	return module("os", starlark.StringDict{"path": osPathModule(), "sep": starlark.String("/")})
}

// ---- time ----

func timeModule() *starlarkstruct.Module {
	return module("time", starlark.StringDict{
		"time": builtin("time", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs("time.time", args, kw, 0); err != nil {
				return nil, err
			}
			return starlark.Float(float64(time.Now().UnixNano()) / 1e9), nil
		}),
	})
}

// ---- re (Go's RE2) ----

// Python's flag values, so `re.I | re.M` means what it says.
const (
	reIgnoreCase = 2
	reMultiline  = 8
	reDotAll     = 16
	reVerbose    = 64
)

func compileRe(fn string, pattern starlark.Value, flags int) (*regexp.Regexp, error) {
	var src string
	switch p := pattern.(type) {
	case starlark.String:
		src = string(p)
	case *rePattern:
		src, flags = p.src, flags|p.flags
	default:
		return nil, fmt.Errorf("re.%s: pattern must be a string, got %s", fn, pattern.Type())
	}
	if flags&reVerbose != 0 {
		return nil, fmt.Errorf("re.%s: re.VERBOSE is not supported by Go's RE2", fn)
	}
	prefix := ""
	if flags&reIgnoreCase != 0 {
		prefix += "i"
	}
	if flags&reMultiline != 0 {
		prefix += "m"
	}
	if flags&reDotAll != 0 {
		prefix += "s"
	}
	full := src
	if prefix != "" {
		full = "(?" + prefix + ")" + src
	}
	re, err := regexp.Compile(full)
	if err != nil {
		return nil, fmt.Errorf("re.%s: %q is not a valid RE2 pattern (no backreferences or lookaround in brine): %w", fn, src, err)
	}
	return re, nil
}

// rePattern is re.compile's result.
type rePattern struct {
	src   string
	flags int
	re    *regexp.Regexp
}

func (p *rePattern) String() string        { return fmt.Sprintf("re.compile(%q)", p.src) }
func (p *rePattern) Type() string          { return "re.Pattern" }
func (p *rePattern) Freeze()               {}
func (p *rePattern) Truth() starlark.Bool  { return true }
func (p *rePattern) Hash() (uint32, error) { return starlark.String(p.src).Hash() }
func (p *rePattern) AttrNames() []string {
	return []string{"findall", "match", "pattern", "search", "split", "sub"}
}

func (p *rePattern) Attr(name string) (starlark.Value, error) {
	if name == "pattern" {
		return starlark.String(p.src), nil
	}
	f, ok := reFuncs[name]
	if !ok {
		return nil, nil
	}
	// A bound method: the pattern is the first argument.
	return builtin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		return f(th, b, append(starlark.Tuple{p}, args...), kw)
	}), nil
}

// reMatch is a match object.
type reMatch struct {
	s   string
	loc []int
	re  *regexp.Regexp
}

func (m *reMatch) String() string {
	return fmt.Sprintf("<re.Match object; span=(%d, %d)>", m.loc[0], m.loc[1])
}
func (m *reMatch) Type() string          { return "re.Match" }
func (m *reMatch) Freeze()               {}
func (m *reMatch) Truth() starlark.Bool  { return true }
func (m *reMatch) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: re.Match") }
func (m *reMatch) AttrNames() []string {
	return []string{"end", "group", "groupdict", "groups", "span", "start"}
}

func (m *reMatch) groupIndex(v starlark.Value) (int, error) {
	switch x := v.(type) {
	case starlark.String:
		i := m.re.SubexpIndex(string(x))
		if i < 0 {
			return 0, fmt.Errorf("no such group %q", string(x))
		}
		return i, nil
	default:
		i, err := starlark.AsInt32(v)
		if err != nil || i < 0 || i > m.re.NumSubexp() {
			return 0, fmt.Errorf("no such group %s", v)
		}
		return i, nil
	}
}

func (m *reMatch) group(i int) starlark.Value {
	if m.loc[2*i] < 0 {
		return starlark.None
	}
	return starlark.String(m.s[m.loc[2*i]:m.loc[2*i+1]])
}

func (m *reMatch) Attr(name string) (starlark.Value, error) {
	idxFn := func(f func(i int) starlark.Value) *starlark.Builtin {
		return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var g starlark.Value = starlark.MakeInt(0)
			if err := starlark.UnpackPositionalArgs(name, args, kw, 0, &g); err != nil {
				return nil, err
			}
			i, err := m.groupIndex(g)
			if err != nil {
				return nil, err
			}
			return f(i), nil
		})
	}
	switch name {
	case "group":
		return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			if len(args) == 0 {
				return m.group(0), nil
			}
			var out starlark.Tuple
			for _, a := range args {
				i, err := m.groupIndex(a)
				if err != nil {
					return nil, err
				}
				out = append(out, m.group(i))
			}
			if len(out) == 1 {
				return out[0], nil
			}
			return out, nil
		}), nil
	case "groups":
		return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			out := make(starlark.Tuple, m.re.NumSubexp())
			for i := range out {
				out[i] = m.group(i + 1)
			}
			return out, nil
		}), nil
	case "groupdict":
		return builtin(name, func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			d := starlark.NewDict(0)
			for i, n := range m.re.SubexpNames() {
				if n != "" {
					_ = d.SetKey(starlark.String(n), m.group(i))
				}
			}
			return d, nil
		}), nil
	case "start":
		return idxFn(func(i int) starlark.Value { return starlark.MakeInt(m.loc[2*i]) }), nil
	case "end":
		return idxFn(func(i int) starlark.Value { return starlark.MakeInt(m.loc[2*i+1]) }), nil
	case "span":
		return idxFn(func(i int) starlark.Value {
			return starlark.Tuple{starlark.MakeInt(m.loc[2*i]), starlark.MakeInt(m.loc[2*i+1])}
		}), nil
	}
	return nil, nil
}

type reFunc = func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)

var reFuncs = map[string]reFunc{
	"match":   reFind("match", true),
	"search":  reFind("search", false),
	"findall": reFindall,
	"sub":     reSub,
	"split":   reSplit,
}

func reFind(name string, anchored bool) reFunc {
	return func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var pat starlark.Value
		var s string
		var flags int
		if err := starlark.UnpackArgs("re."+name, args, kw, "pattern", &pat, "string", &s, "flags?", &flags); err != nil {
			return nil, err
		}
		re, err := compileRe(name, pat, flags)
		if err != nil {
			return nil, err
		}
		loc := re.FindStringSubmatchIndex(s)
		if loc == nil || anchored && loc[0] != 0 {
			if anchored && loc != nil {
				// The leftmost match is not at 0; an anchored one may still be.
				re2, err := compileRe(name, starlark.String(`\A(?:`+re.String()+`)`), 0)
				if err != nil {
					return nil, err
				}
				if loc = re2.FindStringSubmatchIndex(s); loc != nil {
					return &reMatch{s: s, loc: loc, re: re2}, nil
				}
			}
			return starlark.None, nil
		}
		return &reMatch{s: s, loc: loc, re: re}, nil
	}
}

func reFindall(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var pat starlark.Value
	var s string
	var flags int
	if err := starlark.UnpackArgs("re.findall", args, kw, "pattern", &pat, "string", &s, "flags?", &flags); err != nil {
		return nil, err
	}
	re, err := compileRe("findall", pat, flags)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, loc := range re.FindAllStringSubmatchIndex(s, -1) {
		m := &reMatch{s: s, loc: loc, re: re}
		switch re.NumSubexp() {
		case 0:
			out = append(out, m.group(0))
		case 1:
			out = append(out, emptyIfNone(m.group(1)))
		default:
			t := make(starlark.Tuple, re.NumSubexp())
			for i := range t {
				t[i] = emptyIfNone(m.group(i + 1))
			}
			out = append(out, t)
		}
	}
	return starlark.NewList(out), nil
}

func emptyIfNone(v starlark.Value) starlark.Value {
	if v == starlark.None {
		return starlark.String("")
	}
	return v
}

// pyReplacement turns Python's \1 and \g<name> into Go's ${1}, ${name}.
func pyReplacement(repl string) string {
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(repl):
			n := repl[i+1]
			switch {
			case n >= '0' && n <= '9':
				j := i + 1
				for j < len(repl) && j < i+3 && repl[j] >= '0' && repl[j] <= '9' {
					j++
				}
				b.WriteString("${" + repl[i+1:j] + "}")
				i = j - 1
			case n == 'g' && i+2 < len(repl) && repl[i+2] == '<':
				end := strings.IndexByte(repl[i:], '>')
				if end < 0 {
					b.WriteByte(c)
					continue
				}
				b.WriteString("${" + repl[i+3:i+end] + "}")
				i += end
			case n == 'n':
				b.WriteByte('\n')
				i++
			case n == 't':
				b.WriteByte('\t')
				i++
			case n == '\\':
				b.WriteByte('\\')
				i++
			default:
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func reSub(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var pat, repl starlark.Value
	var s string
	var count, flags int
	if err := starlark.UnpackArgs("re.sub", args, kw, "pattern", &pat, "repl", &repl, "string", &s, "count?", &count, "flags?", &flags); err != nil {
		return nil, err
	}
	re, err := compileRe("sub", pat, flags)
	if err != nil {
		return nil, err
	}
	var b2 strings.Builder
	last, n := 0, 0
	for _, loc := range re.FindAllStringSubmatchIndex(s, -1) {
		if count > 0 && n >= count {
			break
		}
		b2.WriteString(s[last:loc[0]])
		switch r := repl.(type) {
		case starlark.String:
			b2.Write(re.ExpandString(nil, pyReplacement(string(r)), s, loc))
		case starlark.Callable:
			v, err := starlark.Call(th, r, starlark.Tuple{&reMatch{s: s, loc: loc, re: re}}, nil)
			if err != nil {
				return nil, err
			}
			str, ok := starlark.AsString(v)
			if !ok {
				return nil, fmt.Errorf("re.sub: replacement function returned %s, not str", v.Type())
			}
			b2.WriteString(str)
		default:
			return nil, fmt.Errorf("re.sub: repl must be str or a function, got %s", repl.Type())
		}
		last = loc[1]
		n++
	}
	b2.WriteString(s[last:])
	return starlark.String(b2.String()), nil
}

func reSplit(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var pat starlark.Value
	var s string
	var maxsplit, flags int
	if err := starlark.UnpackArgs("re.split", args, kw, "pattern", &pat, "string", &s, "maxsplit?", &maxsplit, "flags?", &flags); err != nil {
		return nil, err
	}
	re, err := compileRe("split", pat, flags)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	last := 0
	for _, loc := range re.FindAllStringSubmatchIndex(s, -1) {
		if maxsplit > 0 && len(out) >= maxsplit*(1+re.NumSubexp()) {
			break
		}
		out = append(out, starlark.String(s[last:loc[0]]))
		// Python includes captured groups in the result.
		m := &reMatch{s: s, loc: loc, re: re}
		for i := 1; i <= re.NumSubexp(); i++ {
			out = append(out, m.group(i))
		}
		last = loc[1]
	}
	out = append(out, starlark.String(s[last:]))
	return starlark.NewList(out), nil
}

func reModule() *starlarkstruct.Module {
	m := starlark.StringDict{
		"I": starlark.MakeInt(reIgnoreCase), "IGNORECASE": starlark.MakeInt(reIgnoreCase),
		"M": starlark.MakeInt(reMultiline), "MULTILINE": starlark.MakeInt(reMultiline),
		"S": starlark.MakeInt(reDotAll), "DOTALL": starlark.MakeInt(reDotAll),
		"X": starlark.MakeInt(reVerbose), "VERBOSE": starlark.MakeInt(reVerbose),
		"escape": builtin("escape", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var s string
			if err := starlark.UnpackPositionalArgs("re.escape", args, kw, 1, &s); err != nil {
				return nil, err
			}
			return starlark.String(regexp.QuoteMeta(s)), nil
		}),
		"compile": builtin("compile", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var pat starlark.Value
			var flags int
			if err := starlark.UnpackArgs("re.compile", args, kw, "pattern", &pat, "flags?", &flags); err != nil {
				return nil, err
			}
			re, err := compileRe("compile", pat, flags)
			if err != nil {
				return nil, err
			}
			if p, ok := pat.(*rePattern); ok {
				return p, nil
			}
			src, _ := starlark.AsString(pat)
			return &rePattern{src: src, flags: flags, re: re}, nil
		}),
	}
	for name, f := range reFuncs {
		m[name] = builtin(name, f)
	}
	return module("re", m)
}
