package exec

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/brine-cm/brine/internal/gonja/nodes"
	"github.com/brine-cm/brine/internal/gonja/tokens"
	"github.com/pkg/errors"
)

// Macro is the type macro functions must fulfill
type Macro func(params *VarArgs) *Value

type MacroSet map[string]Macro

// Exists returns true if the given filter is already registered
func (ms MacroSet) Exists(name string) bool {
	_, existing := ms[name]
	return existing
}

// Register registers a new filter. If there's already a filter with the same
// name, Register will panic. You usually want to call this
// function in the filter's init() function:
// http://golang.org/doc/effective_go.html#init
func (ms *MacroSet) Register(name string, fn Macro) error {
	if ms.Exists(name) {
		return errors.Errorf("filter with name '%s' is already registered", name)
	}
	(*ms)[name] = fn
	return nil
}

// Replace replaces an already registered filter with a new implementation. Use this
// function with caution since it allows you to change existing filter behaviour.
func (ms *MacroSet) Replace(name string, fn Macro) error {
	if !ms.Exists(name) {
		return errors.Errorf("filter with name '%s' does not exist (therefore cannot be overridden)", name)
	}
	(*ms)[name] = fn
	return nil
}

func MacroNodeToFunc(node *nodes.Macro, r *Renderer) (Macro, error) {
	// Jinja2 macros take extra positional and keyword arguments, and a
	// caller, when their body uses varargs, kwargs or caller.
	varArgsName, kwArgsName := node.VarArgsName, node.KwArgsName
	if varArgsName == "" && usesName(node.Wrapper, "varargs") {
		varArgsName = "varargs"
	}
	if kwArgsName == "" && usesName(node.Wrapper, "kwargs") {
		kwArgsName = "kwargs"
	}
	declared := map[string]bool{}
	for _, kw := range node.Kwargs {
		if n, ok := kw.Key.(*nodes.String); ok {
			declared[n.Val] = true
		}
		if n, ok := kw.Key.(*nodes.Name); ok {
			declared[n.Name.Val] = true
		}
	}
	return func(params *VarArgs) *Value {
		if c, ok := params.KwArgs["caller"]; ok && !declared["caller"] {
			kw := make(map[string]*Value, len(params.KwArgs))
			for k, v := range params.KwArgs {
				if k != "caller" {
					kw[k] = v
				}
			}
			var order []string
			for _, k := range params.KwOrder {
				if k != "caller" {
					order = append(order, k)
				}
			}
			params = &VarArgs{Args: params.Args, KwArgs: kw, KwOrder: order, caller: c}
		}
		var out strings.Builder
		sub := r.Inherit()
		sub.Output = &out

		// --- Bind positional arguments to named macro params (up to len(Kwargs)) ---
		macroArguments := make([]*Pair, len(node.Kwargs))
		positionalCount := len(params.Args)
		boundPositional := positionalCount
		if boundPositional > len(node.Kwargs) {
			boundPositional = len(node.Kwargs)
		}

		for i := 0; i < boundPositional; i++ {
			key := r.Eval(node.Kwargs[i].Key)
			if key.IsError() {
				return AsValue(fmt.Errorf(
					"macro '%s' failed to evaluate positional argument named '%s': %s",
					node.Name, node.Kwargs[i].Key.String(), key,
				))
			}
			macroArguments[i] = &Pair{
				Value: params.Args[i],
				Key:   key,
			}
		}

		// --- Collect overflow positional args into *args (if declared) ---
		var varArgsList []any
		if positionalCount > len(node.Kwargs) {
			if varArgsName == "" {
				return AsValue(fmt.Errorf(
					"macro '%s' takes not more than %d argument(s)",
					node.Name, len(node.Kwargs),
				))
			}
			for i := len(node.Kwargs); i < positionalCount; i++ {
				varArgsList = append(varArgsList, params.Args[i].Interface())
			}
		}

		// --- Bind keyword args, overflowing to **kwargs if declared ---
		extraKwargs := map[string]*Value{}
		var extraOrder []string
	kwargs:
		for _, keyword := range params.KwNames() {
			argument := params.KwArgs[keyword]
			for i, validArgument := range node.Kwargs {
				validKeyword := r.Eval(validArgument.Key)
				if validKeyword.IsError() {
					return AsValue(fmt.Errorf(
						"macro '%s' failed to evaluate argument named '%s': %s",
						node.Name, node.Kwargs[i].Key.String(), validKeyword,
					))
				}
				if validKeyword.String() == keyword {
					if macroArguments[i] != nil {
						return AsValue(fmt.Errorf(
							"macro '%s' received '%s' argument twice", node.Name, keyword,
						))
					}
					macroArguments[i] = &Pair{
						Value: argument,
						Key:   validKeyword,
					}
					continue kwargs
				}
			}
			// Unmatched keyword arg: route to **kwargs if defined, else error.
			if kwArgsName != "" {
				extraKwargs[keyword] = argument
				extraOrder = append(extraOrder, keyword)
			} else {
				return AsValue(fmt.Errorf(
					"macro '%s' takes no keyword argument '%s'", node.Name, keyword,
				))
			}
		}

		// --- Fill defaults for any params still unbound ---
		for i, defaultArgument := range node.Kwargs {
			if macroArguments[i] == nil {
				key := r.Eval(defaultArgument.Key)
				if key.IsError() {
					return AsValue(fmt.Errorf(
						"macro '%s' failed to evaluate default argument key named '%s': %s",
						node.Name, defaultArgument.Key.String(), key,
					))
				}
				value := r.Eval(defaultArgument.Value)
				if value.IsError() {
					return AsValue(fmt.Errorf(
						"macro '%s' failed to evaluate '%s': %s",
						node.Name, defaultArgument.Value.String(), value,
					))
				}
				macroArguments[i] = &Pair{
					Key:   key,
					Value: value,
				}
			}
		}

		// --- Inject bindings into the macro's context ---
		for _, arg := range macroArguments {
			sub.Environment.Context.Set(arg.Key.String(), arg.Value)
		}

		// Inject *args
		if varArgsName != "" {
			var items []*Value
			for _, v := range varArgsList {
				items = append(items, ToValue(v))
			}
			if h := r.Environment.Hooks; h != nil {
				sub.Environment.Context.Set(varArgsName, h.Tuple(items))
			} else {
				sub.Environment.Context.Set(varArgsName, varArgsList)
			}
		}

		// Inject **kwargs
		if kwArgsName != "" {
			if h := r.Environment.Hooks; h != nil {
				sub.Environment.Context.Set(kwArgsName, h.Mapping(extraOrder, extraKwargs))
			} else {
				m := map[string]any{}
				for k, v := range extraKwargs {
					m[k] = v.Interface()
				}
				sub.Environment.Context.Set(kwArgsName, m)
			}
		}

		if params.caller != nil {
			sub.Environment.Context.Set("caller", params.caller)
		}

		err := sub.ExecuteWrapper(node.Wrapper)
		if err != nil {
			return AsValue(errors.Wrapf(err, `Unable to execute macro '%s'`, node.Name))
		}
		return AsSafeValue(out.String())
	}, nil
}

// usesName reports whether the node tree refers to the variable name.
func usesName(root any, name string) bool {
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value) bool
	walk = func(v reflect.Value) bool {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return false
			}
			seen[v.Pointer()] = true
			if n, ok := v.Interface().(*nodes.Name); ok {
				return n.Name != nil && n.Name.Val == name
			}
			if _, ok := v.Interface().(*tokens.Token); ok {
				return false
			}
			return walk(v.Elem())
		case reflect.Interface:
			return !v.IsNil() && walk(v.Elem())
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() && walk(v.Field(i)) {
					return true
				}
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				if walk(v.Index(i)) {
					return true
				}
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				if walk(it.Value()) {
					return true
				}
			}
		}
		return false
	}
	return walk(reflect.ValueOf(root))
}
