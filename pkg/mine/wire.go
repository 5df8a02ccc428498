package mine

import (
	"encoding/json"
	"fmt"
	"math"
)

// Keys of the wrapper that carries allow_tgt with a value inside
// MineUpdate.data. The wire type is map<string, Value>, which has no room
// for per-function metadata, so the metadata rides inside the value.
const (
	WrapValueKey   = "__mine_value__"
	WrapTgtKey     = "__allow_tgt__"
	WrapTgtTypeKey = "__allow_tgt_type__"
)

// Encode returns what a minion puts into MineUpdate.data for one function.
// Without allowTgt the value goes bare. A bare value that itself looks like
// a wrapper is wrapped anyway, so Decode never mistakes data for metadata.
func Encode(value any, allowTgt, allowTgtType string) any {
	if allowTgt == "" && !isWrapper(value) {
		return value
	}
	w := map[string]any{WrapValueKey: value}
	if allowTgt != "" {
		if allowTgtType == "" {
			allowTgtType = "glob"
		}
		w[WrapTgtKey] = allowTgt
		w[WrapTgtTypeKey] = allowTgtType
	}
	return w
}

// Decode undoes Encode: the value and the ACL it was published with
// (allowTgt "" means readable by everyone).
func Decode(v any) (value any, allowTgt, allowTgtType string) {
	if !isWrapper(v) {
		return v, "", ""
	}
	m := v.(map[string]any)
	allowTgt, _ = m[WrapTgtKey].(string)
	allowTgtType, _ = m[WrapTgtTypeKey].(string)
	if allowTgt != "" && allowTgtType == "" {
		allowTgtType = "glob"
	}
	if allowTgt == "" {
		allowTgtType = ""
	}
	return m[WrapValueKey], allowTgt, allowTgtType
}

// isWrapper: a map holding __mine_value__ and nothing but wrapper keys.
func isWrapper(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if _, ok := m[WrapValueKey]; !ok {
		return false
	}
	for k := range m {
		switch k {
		case WrapValueKey, WrapTgtKey, WrapTgtTypeKey:
		default:
			return false
		}
	}
	return true
}

// normalize turns a function's return into the JSON-shaped tree the wire
// and the store carry (map[string]any, []any, string, float64, bool, nil).
// Both ends compare normalized trees, so a []string published by a minion
// equals the []any the master reads back from its file. The result shares
// nothing with v. Common shapes are walked directly; anything else takes
// the encoding/json round trip.
func normalize(v any) (any, error) {
	switch t := v.(type) {
	case nil, string, bool:
		return v, nil
	case float64:
		return finite(t)
	case float32:
		return finite(float64(t))
	case int:
		return float64(t), nil
	case int64:
		return float64(t), nil
	case int32:
		return float64(t), nil
	case uint64:
		return float64(t), nil
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := normalize(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			n, err := normalize(e)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", k, err)
			}
			out[k] = n
		}
		return out, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("value is not JSON-serializable: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("value does not round-trip through JSON: %w", err)
	}
	return out, nil
}

func finite(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("value %v is not representable in JSON", f)
	}
	return f, nil
}
