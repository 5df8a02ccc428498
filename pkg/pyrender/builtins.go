package pyrender

import (
	"fmt"

	"go.starlark.net/starlark"
)

// typeNames maps Python's type names, as passed to isinstance, to the
// Starlark types they cover. basestring and unicode are Python 2's.
var typeNames = map[string][]string{
	"str": {"string"}, "unicode": {"string"}, "basestring": {"string", "bytes"}, "bytes": {"bytes"},
	"int": {"int"}, "long": {"int"}, "float": {"float"}, "bool": {"bool"},
	"dict": {"dict"}, "list": {"list"}, "tuple": {"tuple"}, "set": {"set"},
}

// pyBuiltins are the Python 2 built-ins Salt #!py files lean on most.
var pyBuiltins = starlark.StringDict{
	"xrange":  starlark.Universe["range"],
	"unicode": starlark.Universe["str"],
	"long":    starlark.Universe["int"],
	"basestring": starlark.NewBuiltin("basestring", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		return nil, fmt.Errorf("basestring cannot be called; use it in isinstance")
	}),
	"isinstance": starlark.NewBuiltin("isinstance", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var v, types starlark.Value
		if err := starlark.UnpackPositionalArgs("isinstance", args, kw, 2, &v, &types); err != nil {
			return nil, err
		}
		check := func(t starlark.Value) (bool, error) {
			bt, ok := t.(*starlark.Builtin)
			if !ok {
				return false, fmt.Errorf("isinstance: %s is not a type (str, int, dict, list, ...)", t)
			}
			covered, ok := typeNames[bt.Name()]
			if !ok {
				return false, fmt.Errorf("isinstance: %s is not a type (str, int, dict, list, ...)", bt.Name())
			}
			for _, c := range covered {
				if v.Type() == c {
					return true, nil
				}
			}
			return false, nil
		}
		if tup, ok := types.(starlark.Tuple); ok {
			for _, t := range tup {
				if hit, err := check(t); err != nil || hit {
					return starlark.Bool(hit), err
				}
			}
			return starlark.False, nil
		}
		hit, err := check(types)
		return starlark.Bool(hit), err
	}),
}
