// Package mongodb implements mongodb.replset: make a MongoDB replica set
// have the members it is given. The configuration to send is computed by
// a pure function (Desired) from the server's current one; the server is
// reached only through the small Client interface.
package mongodb

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Config is a replica set configuration document, as plain Go values
// (map[string]any, []any, int64, float64, string, bool, and driver types
// such as ObjectID passed through untouched).
type Config = map[string]any

// Member is one wanted member. ID < 0 means "assign one": an existing
// member with the same host keeps its _id, a new one gets the next free.
type Member struct {
	ID      int
	Host    string
	Options map[string]any // priority, votes, hidden, arbiterOnly, tags...
}

// Spec is one mongodb.replset call.
type Spec struct {
	Name     string // the replica set _id
	Members  []Member
	Settings map[string]any // only the keys given are managed
}

// Action is what Desired decided.
type Action int

// Actions.
const (
	NoChange Action = iota
	Initiate
	Reconfig
)

func (a Action) String() string {
	return [...]string{"none", "replSetInitiate", "replSetReconfig"}[a]
}

// Validate checks the spec on its own.
func (s Spec) Validate() error {
	if s.Name == "" {
		return errors.New("mongodb.replset: name (the replica set _id) is required")
	}
	if len(s.Members) == 0 {
		return fmt.Errorf("mongodb.replset %s: members is empty", s.Name)
	}
	hosts, ids := map[string]bool{}, map[int]bool{}
	for i, m := range s.Members {
		h := strings.ToLower(m.Host)
		if h == "" {
			return fmt.Errorf("mongodb.replset %s: members[%d] has no host", s.Name, i)
		}
		if hosts[h] {
			return fmt.Errorf("mongodb.replset %s: host %s listed twice", s.Name, m.Host)
		}
		hosts[h] = true
		if m.ID >= 0 {
			if ids[m.ID] {
				return fmt.Errorf("mongodb.replset %s: member _id %d used twice", s.Name, m.ID)
			}
			ids[m.ID] = true
		}
		for k := range m.Options {
			if k == "_id" || k == "host" {
				return fmt.Errorf("mongodb.replset %s: members[%d]: %s is not an option", s.Name, i, k)
			}
		}
	}
	return nil
}

// Desired computes the configuration to send. current is nil when the
// server has no replica set configuration yet (NotYetInitialized).
func Desired(current Config, s Spec) (Config, Action, error) {
	if err := s.Validate(); err != nil {
		return nil, NoChange, err
	}
	var curMembers []map[string]any
	if current != nil {
		if id, _ := current["_id"].(string); id != s.Name {
			return nil, NoChange, fmt.Errorf("mongodb.replset %s: the server belongs to replica set %q", s.Name, id)
		}
		var err error
		if curMembers, err = members(current); err != nil {
			return nil, NoChange, fmt.Errorf("mongodb.replset %s: current config: %w", s.Name, err)
		}
	}
	byHost := map[string]map[string]any{}
	byID := map[int]map[string]any{}
	maxID := -1
	for _, m := range curMembers {
		id, _ := toInt(m["_id"])
		h, _ := m["host"].(string)
		byHost[strings.ToLower(h)] = m
		byID[id] = m
		maxID = max(maxID, id)
	}
	for _, m := range s.Members {
		maxID = max(maxID, m.ID)
	}
	// Assign ids: keep a host's existing _id, else the next free one.
	want := make([]Member, len(s.Members))
	copy(want, s.Members)
	used := map[int]bool{}
	for _, m := range want {
		if m.ID >= 0 {
			used[m.ID] = true
		}
	}
	for i := range want {
		if want[i].ID >= 0 {
			continue
		}
		if cur, ok := byHost[strings.ToLower(want[i].Host)]; ok {
			if id, _ := toInt(cur["_id"]); !used[id] {
				want[i].ID = id
				used[id] = true
				continue
			}
		}
		maxID++
		want[i].ID = maxID
		used[maxID] = true
	}
	sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })

	newMembers := make([]any, len(want))
	same := current != nil && len(want) == len(curMembers)
	for i, m := range want {
		doc := map[string]any{}
		if cur, ok := byID[m.ID]; ok && strings.EqualFold(cur["host"].(string), m.Host) {
			// Keep what the server filled in (priority, votes, tags...).
			doc = maps.Clone(cur)
		} else {
			same = false
		}
		doc["_id"] = int64(m.ID)
		doc["host"] = m.Host
		for k, v := range m.Options {
			if cur, ok := doc[k]; !ok || !equal(cur, v) {
				same = false
			}
			doc[k] = v
		}
		newMembers[i] = doc
	}
	var curSettings map[string]any
	if current != nil {
		curSettings, _ = current["settings"].(map[string]any)
	}
	for k, v := range s.Settings {
		if cur, ok := curSettings[k]; !ok || !equal(cur, v) {
			same = false
		}
	}
	if same {
		return current, NoChange, nil
	}
	next := Config{}
	action := Initiate
	version := int64(1)
	if current != nil {
		action = Reconfig
		next = maps.Clone(current)
		// The server owns term; sending a stale one back is refused by
		// some versions, and it is ignored by the rest.
		delete(next, "term")
		v, ok := toInt(current["version"])
		if !ok {
			return nil, NoChange, fmt.Errorf("mongodb.replset %s: current config has no numeric version", s.Name)
		}
		version = int64(v) + 1
	}
	next["_id"] = s.Name
	next["version"] = version
	next["members"] = newMembers
	if len(s.Settings) > 0 {
		st := maps.Clone(curSettings)
		if st == nil {
			st = map[string]any{}
		}
		maps.Copy(st, s.Settings)
		next["settings"] = st
	}
	return next, action, nil
}

func members(c Config) ([]map[string]any, error) {
	raw, ok := c["members"].([]any)
	if !ok {
		return nil, errors.New("members is not a list")
	}
	out := make([]map[string]any, 0, len(raw))
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("members[%d] is not a document", i)
		}
		if _, ok := toInt(m["_id"]); !ok {
			return nil, fmt.Errorf("members[%d] has no numeric _id", i)
		}
		if _, ok := m["host"].(string); !ok {
			return nil, fmt.Errorf("members[%d] has no host", i)
		}
		out = append(out, m)
	}
	return out, nil
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	}
	return 0, false
}

// equal compares values as MongoDB would: numbers by value whatever
// their BSON width, documents and arrays deeply.
func equal(a, b any) bool {
	if x, ok := num(a); ok {
		y, ok := num(b)
		return ok && x == y
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, equal)
	}
	return a == b
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Summary lists members as "_id:host", the shape changes report.
func Summary(c Config) []any {
	ms, _ := members(c)
	out := make([]any, 0, len(ms))
	for _, m := range ms {
		id, _ := toInt(m["_id"])
		out = append(out, fmt.Sprintf("%d:%s", id, m["host"]))
	}
	return out
}
