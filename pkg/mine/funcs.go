package mine

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// FuncSpec is one mine_functions entry after parsing.
type FuncSpec struct {
	Name         string // the mine key: the alias, or the function itself
	Function     string // execution function to run, "module.function"
	Args         []any
	Kwargs       map[string]any
	AllowTgt     string // "" = readable by every requester
	AllowTgtType string
}

var funcNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`)

// allowTgtTypes are the target types Salt accepts for allow_tgt_type.
var allowTgtTypes = map[string]bool{
	"glob": true, "pcre": true, "list": true, "grain": true, "grain_pcre": true,
	"pillar": true, "pillar_pcre": true, "pillar_exact": true, "ipcidr": true,
	"compound": true, "nodegroup": true,
}

// ParseFunctions reads Salt's mine_functions config value, sorted by name:
//
//	network.ip_addrs: [eth0]              # positional args
//	network.get_hostname: []              # or empty / null
//	network.interfaces: {}                # kwargs mapping
//	web_ip:                               # alias, mapping form
//	  mine_function: network.ip_addrs
//	  cidr: 198.18.0.0/16
//	  allow_tgt: 'web*'
//	db_ip:                                # alias, Salt's list-of-dicts form
//	  - mine_function: network.ip_addrs
//	  - cidr: 198.18.0.0/16
func ParseFunctions(v any) ([]FuncSpec, error) {
	top, err := stringMap(v)
	if err != nil {
		return nil, fmt.Errorf("mine_functions: %w", err)
	}
	names := make([]string, 0, len(top))
	for k := range top {
		names = append(names, k)
	}
	sort.Strings(names)
	specs := make([]FuncSpec, 0, len(names))
	for _, name := range names {
		sp, err := parseOne(name, top[name])
		if err != nil {
			return nil, fmt.Errorf("mine_functions: %q: %w", name, err)
		}
		specs = append(specs, sp)
	}
	return specs, nil
}

func parseOne(name string, def any) (FuncSpec, error) {
	sp := FuncSpec{Name: name}
	if strings.TrimSpace(name) == "" {
		return sp, fmt.Errorf("empty name")
	}
	kw := map[string]any{}
	switch d := def.(type) {
	case nil:
	case []any:
		for i, item := range d {
			if m, ok := item.(map[string]any); ok {
				if err := mergeKwargs(kw, m, fmt.Sprintf("item %d", i)); err != nil {
					return sp, err
				}
				continue
			}
			if m, ok := item.(map[any]any); ok {
				sm, err := stringMap(m)
				if err != nil {
					return sp, fmt.Errorf("item %d: %w", i, err)
				}
				if err := mergeKwargs(kw, sm, fmt.Sprintf("item %d", i)); err != nil {
					return sp, err
				}
				continue
			}
			a, err := normalize(item)
			if err != nil {
				return sp, fmt.Errorf("argument %d: %w", i, err)
			}
			sp.Args = append(sp.Args, a)
		}
	case map[string]any, map[any]any:
		m, err := stringMap(d)
		if err != nil {
			return sp, err
		}
		if err := mergeKwargs(kw, m, "mapping"); err != nil {
			return sp, err
		}
	default:
		return sp, fmt.Errorf("value must be a list of arguments or a mapping of keyword arguments, got %T %v", def, def)
	}

	sp.Function = name
	if f, ok := kw["mine_function"]; ok {
		s, ok := f.(string)
		if !ok || s == "" {
			return sp, fmt.Errorf("mine_function must be a function name, got %T %v", f, f)
		}
		sp.Function = s
		delete(kw, "mine_function")
	}
	if !funcNameRE.MatchString(sp.Function) {
		if sp.Function == name {
			return sp, fmt.Errorf("%q is not a module.function name; an alias needs mine_function", name)
		}
		return sp, fmt.Errorf("mine_function %q is not a module.function name", sp.Function)
	}

	listTgt := false
	if t, ok := kw["allow_tgt"]; ok {
		delete(kw, "allow_tgt")
		switch t := t.(type) {
		case string:
			sp.AllowTgt = t
		case []any:
			parts := make([]string, 0, len(t))
			for i, p := range t {
				s, ok := p.(string)
				if !ok || s == "" || strings.Contains(s, ",") {
					return sp, fmt.Errorf("allow_tgt[%d] must be a minion id, got %T %v", i, p, p)
				}
				parts = append(parts, s)
			}
			sp.AllowTgt, listTgt = strings.Join(parts, ","), true
		case nil:
		default:
			return sp, fmt.Errorf("allow_tgt must be a target string or a list of minion ids, got %T", t)
		}
	}
	if t, ok := kw["allow_tgt_type"]; ok {
		delete(kw, "allow_tgt_type")
		s, ok := t.(string)
		if t != nil && (!ok || !allowTgtTypes[s]) {
			return sp, fmt.Errorf("allow_tgt_type %v is not a target type (glob, pcre, list, grain, grain_pcre, pillar, pillar_pcre, pillar_exact, ipcidr, compound, nodegroup)", t)
		}
		sp.AllowTgtType = s
	}
	switch {
	case sp.AllowTgt == "" && sp.AllowTgtType != "":
		return sp, fmt.Errorf("allow_tgt_type %q without allow_tgt", sp.AllowTgtType)
	case sp.AllowTgt != "" && sp.AllowTgtType == "" && listTgt:
		sp.AllowTgtType = "list"
	case sp.AllowTgt != "" && sp.AllowTgtType == "":
		sp.AllowTgtType = "glob"
	}
	if len(kw) > 0 {
		sp.Kwargs = kw
	}
	return sp, nil
}

func mergeKwargs(dst, src map[string]any, where string) error {
	for k, v := range src {
		if k == "" {
			return fmt.Errorf("%s: empty keyword", where)
		}
		if _, dup := dst[k]; dup {
			return fmt.Errorf("%s: keyword %q given twice", where, k)
		}
		nv, err := normalize(v)
		if err != nil {
			return fmt.Errorf("%s: keyword %q: %w", where, k, err)
		}
		dst[k] = nv
	}
	return nil
}

// stringMap accepts the maps YAML decoders produce; nil is an empty map.
func stringMap(v any) (map[string]any, error) {
	switch m := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return m, nil
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			s, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("key %v is a %T, want a string", k, k)
			}
			out[s] = val
		}
		return out, nil
	default:
		return nil, fmt.Errorf("want a mapping of name to definition, got %T", v)
	}
}

// MarshalFunctions renders specs back into a mine_functions value that
// ParseFunctions reads to the same specs (the master pushes it to minions).
func MarshalFunctions(specs []FuncSpec) map[string]any {
	out := make(map[string]any, len(specs))
	for _, sp := range specs {
		def := append([]any{}, sp.Args...)
		kw := map[string]any{}
		for k, v := range sp.Kwargs {
			kw[k] = v
		}
		if sp.Function != sp.Name {
			kw["mine_function"] = sp.Function
		}
		if sp.AllowTgt != "" {
			kw["allow_tgt"] = sp.AllowTgt
			kw["allow_tgt_type"] = sp.AllowTgtType
		}
		if len(kw) > 0 {
			def = append(def, kw)
		}
		out[sp.Name] = def
	}
	return out
}
