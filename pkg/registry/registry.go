// Package registry is the master's minion registry: every minion the
// master knows, its grains and its connection state, in an in-memory
// go-memdb database. Reads run on immutable snapshots, so selecting
// targets never blocks writers; blocking queries wait on memdb watch sets.
//
// Grains are also stored flattened into (path, value) rows indexed for
// grain targeting, so `G@roles:web` over 10,000 minions is one index seek
// rather than 10,000 grain walks. Results always equal target.Matcher.Match
// evaluated over all minions: the index only narrows which minions are
// evaluated (see target.Candidates).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/brine-cm/brine/pkg/target"
)

// ErrNotFound is returned for an operation on a minion the registry does
// not know.
var ErrNotFound = errors.New("minion not known")

// Minion is one known minion. Grains hold JSON-shaped values.
type Minion struct {
	ID          string
	Grains      map[string]any
	Connected   bool
	LastSeen    time.Time // last connect or disconnect
	ConnectedAt time.Time // start of the current (or last) connection
}

// Registry is safe for concurrent use.
type Registry struct {
	db *memdb.MemDB

	// mu orders writers and keeps the grain index consistent with the
	// minions table a reader's snapshot shows: writers hold it for a few
	// microseconds, so readers waiting on it are not noticeably blocked.
	mu  sync.RWMutex
	gix *grainIndex
	// shared holds top-level grain values (lists, dicts) equal across
	// minions once, reference-counted: a fleet's cpu_flags list is the
	// same 130 strings on every minion of one hardware type.
	shared map[string]*sharedValue
}

type sharedValue struct {
	v    any
	refs int
}

// New returns an empty registry.
func New() (*Registry, error) {
	db, err := memdb.NewMemDB(registrySchema())
	if err != nil {
		return nil, fmt.Errorf("registry schema: %w", err)
	}
	return &Registry{db: db, gix: newGrainIndex(), shared: map[string]*sharedValue{}}, nil
}

// shareGrains stores a normalised copy of grains with its strings interned
// and its composite top-level values shared with other minions'.
func (r *Registry) shareGrains(g map[string]any) map[string]any {
	if g == nil {
		return nil
	}
	norm := copyValue(g).(map[string]any)
	out := make(map[string]any, len(norm))
	for k, v := range norm {
		k = intern(k).(string)
		switch v.(type) {
		case map[string]any, []any:
			b, err := json.Marshal(v)
			if err != nil {
				out[k] = intern(v)
				continue
			}
			key := string(b)
			sv := r.shared[key]
			if sv == nil {
				sv = &sharedValue{v: intern(v)}
				r.shared[key] = sv
			}
			sv.refs++
			out[k] = sv.v
		default:
			out[k] = intern(v)
		}
	}
	return out
}

// releaseGrains drops the references shareGrains took.
func (r *Registry) releaseGrains(g map[string]any) {
	for _, v := range g {
		switch v.(type) {
		case map[string]any, []any:
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			if sv := r.shared[string(b)]; sv != nil {
				if sv.refs--; sv.refs <= 0 {
					delete(r.shared, string(b))
				}
			}
		}
	}
}

// Grains returns the stored grains of a minion without copying them. They
// are shared with the registry (and with other minions): callers must not
// modify them. Returns false for an unknown minion.
func (r *Registry) Grains(id string) (map[string]any, bool) {
	raw, err := r.db.Txn(false).First(tableMinions, indexID, id)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*Minion).Grains, true
}

func validID(id string) error {
	if id == "" {
		return errors.New("minion id is empty")
	}
	if strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("minion id %q contains a NUL byte", id)
	}
	return nil
}

// Upsert adds a minion or replaces everything known about it: grains,
// connection state and times. The grains are copied.
func (r *Registry) Upsert(m Minion) error {
	if err := validID(m.ID); err != nil {
		return fmt.Errorf("registry upsert: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	stored := m
	stored.ID = intern(m.ID).(string)
	txn := r.db.Txn(true)
	defer txn.Abort()
	old, err := txn.First(tableMinions, indexID, m.ID)
	if err != nil {
		return fmt.Errorf("registry upsert %q: %w", m.ID, err)
	}
	stored.Grains = r.shareGrains(m.Grains)
	if err := txn.Insert(tableMinions, &stored); err != nil {
		r.releaseGrains(stored.Grains)
		return fmt.Errorf("registry upsert %q: %w", m.ID, err)
	}
	if err := bumpIndex(txn); err != nil {
		r.releaseGrains(stored.Grains)
		return fmt.Errorf("registry upsert %q: %w", m.ID, err)
	}
	txn.Commit()
	if old != nil {
		prev := old.(*Minion).Grains
		r.gix.remove(m.ID, prev)
		r.releaseGrains(prev)
	}
	r.gix.add(stored.ID, stored.Grains)
	return nil
}

// SetConnected records a minion connecting or disconnecting at a time.
// LastSeen becomes at; connecting also sets ConnectedAt. The minion must
// already be known (Upsert it first, with its grains).
func (r *Registry) SetConnected(id string, connected bool, at time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	txn := r.db.Txn(true)
	defer txn.Abort()
	raw, err := txn.First(tableMinions, indexID, id)
	if err != nil {
		return fmt.Errorf("registry set connected %q: %w", id, err)
	}
	if raw == nil {
		return fmt.Errorf("registry set connected %q: %w", id, ErrNotFound)
	}
	// Stored objects are never modified in place: snapshots share them.
	m := *raw.(*Minion)
	m.Connected = connected
	m.LastSeen = at
	if connected {
		m.ConnectedAt = at
	}
	if err := txn.Insert(tableMinions, &m); err != nil {
		return fmt.Errorf("registry set connected %q: %w", id, err)
	}
	if err := bumpIndex(txn); err != nil {
		return fmt.Errorf("registry set connected %q: %w", id, err)
	}
	txn.Commit()
	return nil
}

// Delete forgets a minion and its grains (salt-key -d).
func (r *Registry) Delete(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	txn := r.db.Txn(true)
	defer txn.Abort()
	old, err := txn.First(tableMinions, indexID, id)
	if err != nil {
		return fmt.Errorf("registry delete %q: %w", id, err)
	}
	if old == nil {
		return fmt.Errorf("registry delete %q: %w", id, ErrNotFound)
	}
	if err := txn.Delete(tableMinions, old); err != nil {
		return fmt.Errorf("registry delete %q: %w", id, err)
	}
	if err := bumpIndex(txn); err != nil {
		return fmt.Errorf("registry delete %q: %w", id, err)
	}
	txn.Commit()
	prev := old.(*Minion).Grains
	r.gix.remove(id, prev)
	r.releaseGrains(prev)
	return nil
}

// Get returns a copy of one minion.
func (r *Registry) Get(id string) (Minion, bool) {
	raw, err := r.db.Txn(false).First(tableMinions, indexID, id)
	if err != nil || raw == nil {
		return Minion{}, false
	}
	return copyMinion(raw.(*Minion)), true
}

// List returns copies of all known minions sorted by id.
func (r *Registry) List() []Minion {
	return r.list(indexID)
}

// ListConnected returns copies of the minions whose connection state is
// connected, sorted by id.
func (r *Registry) ListConnected(connected bool) []Minion {
	return r.list(indexConnected, connected)
}

func (r *Registry) list(index string, args ...any) []Minion {
	it, err := r.db.Txn(false).Get(tableMinions, index, args...)
	if err != nil {
		slog.Error("registry list", "index", index, "err", err)
		return nil
	}
	var out []Minion
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, copyMinion(raw.(*Minion)))
	}
	return out
}

// Select returns the sorted ids of all known minions, connected or not,
// that the target selects.
func (r *Registry) Select(expr string, typ target.Type) ([]string, error) {
	m, err := target.Compile(expr, typ)
	if err != nil {
		return nil, err
	}
	return r.SelectMatcher(m), nil
}

// SelectMatcher is Select for an already compiled target.
func (r *Registry) SelectMatcher(m *target.Matcher) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	txn := r.db.Txn(false)
	ix := &txnIndex{txn: txn, gix: r.gix}
	cands, bounded := m.Candidates(ix)
	if ix.err != nil {
		// The index failed us; a scan is slower but still right.
		slog.Error("registry index lookup failed, scanning", "target", m.String(), "err", ix.err)
		bounded = false
	}
	if !bounded {
		return scan(txn, m)
	}
	out := make([]string, 0, len(cands))
	for _, c := range cands {
		if c.Sure && c.Known {
			out = append(out, c.ID)
			continue
		}
		raw, err := txn.First(tableMinions, indexID, c.ID)
		if err != nil || raw == nil {
			continue
		}
		if c.Sure || m.Match(c.ID, raw.(*Minion).Grains) {
			out = append(out, c.ID)
		}
	}
	return out
}

func scan(txn *memdb.Txn, m *target.Matcher) []string {
	it, err := txn.Get(tableMinions, indexID)
	if err != nil {
		slog.Error("registry scan", "err", err)
		return nil
	}
	var out []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		mn := raw.(*Minion)
		if m.Match(mn.ID, mn.Grains) {
			out = append(out, mn.ID)
		}
	}
	return out
}

const registryIndexKey = "registry"

func bumpIndex(txn *memdb.Txn) error {
	var next uint64 = 1
	raw, err := txn.First(tableIndex, indexID, registryIndexKey)
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	if raw != nil {
		next = raw.(*indexEntry).Value + 1
	}
	if err := txn.Insert(tableIndex, &indexEntry{Key: registryIndexKey, Value: next}); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// Index returns the registry's modification index: it grows by one with
// every successful write. 0 means nothing was ever written.
func (r *Registry) Index() uint64 {
	idx, _, _ := r.indexWatch()
	return idx
}

func (r *Registry) indexWatch() (uint64, <-chan struct{}, error) {
	ch, raw, err := r.db.Txn(false).FirstWatch(tableIndex, indexID, registryIndexKey)
	if err != nil {
		return 0, nil, err
	}
	if raw == nil {
		return 0, ch, nil
	}
	return raw.(*indexEntry).Value, ch, nil
}

// Watch is a blocking query in Nomad's style: it returns as soon as the
// registry's index is greater than minIndex (at once if it already is),
// with the new index; or ctx's error when ctx ends first. A caller that
// keeps the returned index and calls Watch again sees every change.
func (r *Registry) Watch(ctx context.Context, minIndex uint64) (uint64, error) {
	for {
		idx, ch, err := r.indexWatch()
		if err != nil {
			return 0, fmt.Errorf("registry watch: %w", err)
		}
		if idx > minIndex {
			return idx, nil
		}
		ws := memdb.NewWatchSet()
		ws.Add(ch)
		if err := ws.WatchCtx(ctx); err != nil {
			return idx, err
		}
	}
}

func copyMinion(m *Minion) Minion {
	c := *m
	c.Grains = copyGrains(m.Grains)
	return c
}

func copyGrains(g map[string]any) map[string]any {
	if g == nil {
		return nil
	}
	return copyValue(g).(map[string]any)
}

// copyValue deep-copies JSON-shaped data into map[string]any / []any so
// that stored grains share nothing with the caller's.
func copyValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64, float32, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64:
		return x
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyValue(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = copyValue(e)
		}
		return l
	case []string:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		return l
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return v
		}
		m := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			m[it.Key().String()] = copyValue(it.Value().Interface())
		}
		return m
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return v
		}
		l := make([]any, rv.Len())
		for i := range l {
			l[i] = copyValue(rv.Index(i).Interface())
		}
		return l
	}
	return v
}
