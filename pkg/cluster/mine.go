package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brine-cm/brine/pkg/mine"
	"github.com/brine-cm/brine/pkg/pki"
)

// mineRecord is one minion's whole mine, one KV entry: a minion's update
// is then one compare-and-set, and mine.get reads from the watched copy.
type mineRecord struct {
	ID        string            `json:"id"`
	Updated   time.Time         `json:"updated"` // newest report
	Functions map[string]mineFn `json:"functions"`
}

type mineFn struct {
	Value        any       `json:"value"`
	AllowTgt     string    `json:"allow_tgt,omitempty"`
	AllowTgtType string    `json:"allow_tgt_type,omitempty"`
	Updated      time.Time `json:"updated"`
}

func decodeMineRecord(b []byte) (mineRecord, error) {
	var r mineRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return mineRecord{}, fmt.Errorf("mine record: %w", err)
	}
	if err := pki.ValidateID(r.ID); err != nil {
		return mineRecord{}, fmt.Errorf("mine record: %w", err)
	}
	for fn := range r.Functions {
		if fn == "" {
			return mineRecord{}, fmt.Errorf("mine record %q: empty function name", r.ID)
		}
	}
	return r, nil
}

func (r mineRecord) entry(fn string) mine.Entry {
	f := r.Functions[fn]
	return mine.Entry{MinionID: r.ID, Function: fn, Value: f.Value, AllowTgt: f.AllowTgt, AllowTgtType: f.AllowTgtType, Updated: f.Updated}
}

// MineStore is mine.Store on a replicated KV bucket: any master's
// mine.get sees every minion's mine, whichever master it reports to.
type MineStore struct {
	w   watched[mineRecord]
	now func() time.Time
}

var _ mine.Store = (*MineStore)(nil)

// OpenMineStore opens the cluster's mine bucket and loads it.
func OpenMineStore(ctx context.Context, n *Node) (*MineStore, error) {
	kv, err := n.kv(ctx, jetstream.KeyValueConfig{Bucket: n.bucket("mine"), Description: "brine mine", History: 1})
	if err != nil {
		return nil, err
	}
	s := &MineStore{now: time.Now}
	s.w = watched[mineRecord]{n: n, kv: kv, decode: func(_ string, b []byte) (string, mineRecord, error) {
		r, err := decodeMineRecord(b)
		return r.ID, r, err
	}}
	if err := s.w.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// normalize gives the JSON-shaped tree the bucket stores, so that a
// value compares equal to what every master reads back.
func normalize(v any) (any, error) {
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

// update runs fn on the minion's current record and writes the result
// with compare-and-set, retrying on conflict. fn returning false writes
// nothing. An empty result deletes the record.
func (s *MineStore) update(ctx context.Context, id string, fn func(r *mineRecord) bool) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, rev, err := s.read(ctx, id)
		if err != nil {
			return err
		}
		if !fn(&r) {
			return nil
		}
		var newRev uint64
		switch {
		case len(r.Functions) == 0 && rev == 0:
			return nil
		case len(r.Functions) == 0:
			err = s.w.kv.Delete(ctx, kvKey(id), jetstream.LastRevision(rev))
			newRev = rev + 1
		default:
			var b []byte
			if b, err = json.Marshal(r); err != nil {
				return fmt.Errorf("mine of %s: encode: %w", id, err)
			}
			if rev == 0 {
				newRev, err = s.w.kv.Create(ctx, kvKey(id), b)
			} else {
				newRev, err = s.w.kv.Update(ctx, kvKey(id), b, rev)
			}
		}
		if err == nil {
			s.w.set(id, r, len(r.Functions) > 0, newRev, true)
			return nil
		}
		if !casErr(err) {
			return fmt.Errorf("mine of %s: bucket: %w", id, err)
		}
		if attempt >= 50 {
			return fmt.Errorf("mine of %s: gave up after %d conflicting writes: %w", id, attempt+1, err)
		}
	}
}

// read fetches the record from the bucket, not the copy: a write must
// start from the newest revision.
func (s *MineStore) read(ctx context.Context, id string) (mineRecord, uint64, error) {
	e, err := s.w.kv.Get(ctx, kvKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return mineRecord{ID: id, Functions: map[string]mineFn{}}, 0, nil
	}
	if err != nil {
		return mineRecord{}, 0, fmt.Errorf("mine of %s: bucket: %w", id, err)
	}
	r, err := decodeMineRecord(e.Value())
	if err != nil {
		return mineRecord{}, 0, err
	}
	if r.Functions == nil {
		r.Functions = map[string]mineFn{}
	}
	return r, e.Revision(), nil
}

// Put implements mine.Store with MemStore's semantics.
func (s *MineStore) Put(ctx context.Context, minionID string, data map[string]any, removed []string, replace bool) ([]string, error) {
	if minionID == "" {
		return nil, errors.New("mine put: empty minion id")
	}
	in := make(map[string]mineFn, len(data))
	for fn, raw := range data {
		if fn == "" {
			return nil, fmt.Errorf("mine put from %s: empty function name", minionID)
		}
		v, tgt, typ := mine.Decode(raw)
		nv, err := normalize(v)
		if err != nil {
			return nil, fmt.Errorf("mine put from %s: function %s: %w", minionID, fn, err)
		}
		in[fn] = mineFn{Value: nv, AllowTgt: tgt, AllowTgtType: typ}
	}
	var changed []string
	err := s.update(ctx, minionID, func(r *mineRecord) bool {
		changed = changed[:0]
		now := s.now().UTC()
		for fn, inc := range in {
			old, had := r.Functions[fn]
			if !had || old.AllowTgt != inc.AllowTgt || old.AllowTgtType != inc.AllowTgtType || !reflect.DeepEqual(old.Value, inc.Value) {
				changed = append(changed, fn)
			}
			inc.Updated = now
			r.Functions[fn] = inc
		}
		drop := removed
		if replace {
			drop = nil
			for fn := range r.Functions {
				if _, ok := in[fn]; !ok {
					drop = append(drop, fn)
				}
			}
		}
		for _, fn := range drop {
			if _, ok := in[fn]; ok {
				continue // data wins over a contradictory removed list
			}
			if _, ok := r.Functions[fn]; ok {
				delete(r.Functions, fn)
				changed = append(changed, fn)
			}
		}
		r.Updated = now
		return true // the report time moves even when nothing changed
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(changed)
	return changed, nil
}

// Get implements mine.Store from the watched copy.
func (s *MineStore) Get(ctx context.Context, ids []string, function string) (map[string]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]any, min(len(ids), 1<<16))
	for _, id := range ids {
		if r, _, ok := s.w.get(id); ok {
			if f, ok := r.Functions[function]; ok {
				out[id] = f.Value
			}
		}
	}
	return out, nil
}

// GetEntries is Get with each entry's ACL: mine.Get uses it to apply
// allow_tgt without a second lookup.
func (s *MineStore) GetEntries(ctx context.Context, ids []string, function string) (map[string]mine.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]mine.Entry, min(len(ids), 1<<16))
	for _, id := range ids {
		if r, _, ok := s.w.get(id); ok {
			if _, ok := r.Functions[function]; ok {
				out[id] = r.entry(function)
			}
		}
	}
	return out, nil
}

// Delete implements mine.Store. It keeps the minion's report time.
func (s *MineStore) Delete(ctx context.Context, minionID string, functions ...string) error {
	return s.update(ctx, minionID, func(r *mineRecord) bool {
		n := len(r.Functions)
		if len(functions) == 0 {
			r.Functions = map[string]mineFn{}
		}
		for _, fn := range functions {
			delete(r.Functions, fn)
		}
		return len(r.Functions) != n
	})
}

// Entries implements mine.Store from the watched copy.
func (s *MineStore) Entries(ctx context.Context, minionID string) ([]mine.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, _, ok := s.w.get(minionID)
	if !ok {
		return nil, nil
	}
	fns := make([]string, 0, len(r.Functions))
	for fn := range r.Functions {
		fns = append(fns, fn)
	}
	sort.Strings(fns)
	out := make([]mine.Entry, len(fns))
	for i, fn := range fns {
		out[i] = r.entry(fn)
	}
	return out, nil
}

// Expire implements mine.Store. Every master runs it; the
// compare-and-set delete lets exactly one of them report each minion, and
// never removes a minion that reported again meanwhile.
func (s *MineStore) Expire(ctx context.Context, olderThan time.Time) ([]string, error) {
	if olderThan.UnixNano() <= 0 {
		return nil, nil
	}
	type stale struct {
		id  string
		rev uint64
	}
	var cands []stale
	s.w.mu.RLock()
	for id, c := range s.w.cache {
		if c.ok && c.v.Updated.Before(olderThan) {
			cands = append(cands, stale{id, c.rev})
		}
	}
	s.w.mu.RUnlock()
	var ids []string
	for _, c := range cands {
		err := s.w.kv.Delete(ctx, kvKey(c.id), jetstream.LastRevision(c.rev))
		if casErr(err) {
			continue // reported again, or another master expired it
		}
		if err != nil {
			return ids, fmt.Errorf("mine expire %s: %w", c.id, err)
		}
		s.w.set(c.id, mineRecord{}, false, c.rev+1, true)
		ids = append(ids, c.id)
	}
	sort.Strings(ids)
	return ids, nil
}

// Close stops the watch.
func (s *MineStore) Close() { s.w.stop() }
