// Package wire converts between Go's JSON-shaped values and the protobuf
// Value/Struct/ListValue types that carry arguments and returns on the wire.
package wire

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"
)

// Normalize turns any JSON-encodable Go value into the plain shapes
// structpb accepts (map[string]any, []any, string, float64, bool, nil).
func Normalize(v any) (any, error) {
	switch v.(type) {
	case nil, string, bool, float64, int, int64, int32, uint32, uint64, float32:
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Value converts a Go value to a protobuf Value.
func Value(v any) (*structpb.Value, error) {
	if pv, err := structpb.NewValue(v); err == nil {
		return pv, nil
	}
	n, err := Normalize(v)
	if err != nil {
		return nil, fmt.Errorf("encode value: %w", err)
	}
	return structpb.NewValue(n)
}

// List converts positional arguments.
func List(args []any) (*structpb.ListValue, error) {
	l := &structpb.ListValue{}
	for i, a := range args {
		v, err := Value(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		l.Values = append(l.Values, v)
	}
	return l, nil
}

// Struct converts keyword arguments or event data.
func Struct(m map[string]any) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for k, a := range m {
		v, err := Value(a)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		s.Fields[k] = v
	}
	return s, nil
}

// Any converts a protobuf Value back; nil stays nil.
func Any(v *structpb.Value) any {
	if v == nil {
		return nil
	}
	return v.AsInterface()
}

// Args converts a ListValue back; nil is an empty slice.
func Args(l *structpb.ListValue) []any {
	if l == nil {
		return []any{}
	}
	return l.AsSlice()
}

// Map converts a Struct back; nil is an empty map.
func Map(s *structpb.Struct) map[string]any {
	if s == nil {
		return map[string]any{}
	}
	return s.AsMap()
}
