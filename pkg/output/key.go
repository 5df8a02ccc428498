package output

import (
	"sort"
	"strings"
)

// keyStates is salt-key's listing order (Salt sorts its internal names:
// minions, minions_denied, minions_pre, minions_rejected).
var keyStates = []struct{ state, label string }{
	{"accepted", "Accepted Keys:"},
	{"denied", "Denied Keys:"},
	{"pending", "Unaccepted Keys:"},
	{"rejected", "Rejected Keys:"},
}

// Keys renders a key listing like salt-key -L. data maps a key state
// (accepted, denied, pending, rejected) to a list of minion IDs, or to a
// mapping ID -> fingerprint (salt-key -f). It reports false when data does
// not have that shape, so callers can fall back to Nested.
func Keys(data any, o Options) (string, bool) {
	m, ok := normalize(data).(map[string]any)
	if !ok || len(m) == 0 {
		return "", false
	}
	c := colors(o.Color)
	label := map[string]string{}
	idColor := map[string]string{
		"accepted": c.Green, "denied": c.Magenta, "pending": c.Red, "rejected": c.Blue,
	}
	headColor := map[string]string{
		"accepted": c.LightGreen, "denied": c.LightMagenta, "pending": c.LightRed, "rejected": c.LightBlue,
	}
	for _, ks := range keyStates {
		label[ks.state] = ks.label
	}
	for k, v := range m {
		if _, known := label[k]; !known {
			return "", false
		}
		switch v.(type) {
		case []any, map[string]any, nil:
		default:
			return "", false
		}
	}
	var b strings.Builder
	for _, ks := range keyStates {
		v, present := m[ks.state]
		if !present {
			continue
		}
		b.WriteString(headColor[ks.state] + ks.label + c.Endc + "\n")
		switch x := v.(type) {
		case []any:
			ids := make([]string, 0, len(x))
			for _, e := range x {
				ids = append(ids, Sanitize(stringify(e)))
			}
			sort.Strings(ids)
			for _, id := range ids {
				b.WriteString(idColor[ks.state] + id + c.Endc + "\n")
			}
		case map[string]any:
			ids := make([]string, 0, len(x))
			for id := range x {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				b.WriteString(idColor[ks.state] + Sanitize(id) + ":  " + Sanitize(stringify(x[id])) + c.Endc + "\n")
			}
		}
	}
	return b.String(), true
}
