package cluster

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brine-cm/brine/pkg/pki"
)

// keyOrder is salt-key -L's order, the same as pki.FileKeyStore.List.
var keyOrder = []pki.KeyState{pki.Accepted, pki.Denied, pki.Pending, pki.Rejected}

// keyRecord is everything recorded for one minion id, in one KV entry, so
// that every decision about an id is one compare-and-set: two masters
// admitting the same id with different keys at the same moment cannot
// both win.
type keyRecord struct {
	ID   string                    `json:"id"`
	Keys map[pki.KeyState]keyEntry `json:"keys"`
}

type keyEntry struct {
	Pub     []byte    `json:"pub"`
	Updated time.Time `json:"updated"`
}

// decodeKeyRecord parses a bucket value, refusing what a master could
// not have written.
func decodeKeyRecord(b []byte) (keyRecord, error) {
	var r keyRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return keyRecord{}, fmt.Errorf("key record: %w", err)
	}
	if err := pki.ValidateID(r.ID); err != nil {
		return keyRecord{}, fmt.Errorf("key record: %w", err)
	}
	for st, e := range r.Keys {
		switch st {
		case pki.Accepted, pki.Pending, pki.Rejected, pki.Denied:
		default:
			return keyRecord{}, fmt.Errorf("key record %q: unknown state %q", r.ID, st)
		}
		if len(e.Pub) != ed25519.PublicKeySize {
			return keyRecord{}, fmt.Errorf("key record %q: %s key is %d bytes, want %d", r.ID, st, len(e.Pub), ed25519.PublicKeySize)
		}
	}
	return r, nil
}

func (r keyRecord) keys() []pki.Key {
	var out []pki.Key
	for _, st := range keyOrder {
		if e, ok := r.Keys[st]; ok {
			out = append(out, pki.Key{ID: r.ID, State: st, PublicKey: ed25519.PublicKey(e.Pub), Fingerprint: pki.Fingerprint(e.Pub), Updated: e.Updated})
		}
	}
	return out
}

func (r keyRecord) states() []pki.KeyState {
	var out []pki.KeyState
	for _, st := range keyOrder {
		if _, ok := r.Keys[st]; ok {
			out = append(out, st)
		}
	}
	return out
}

// kvKey maps a minion id (which may hold characters KV keys may not) to
// a key.
func kvKey(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func kvKeyID(key string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	return string(b), err
}

// KeyChange is one id's key states before and after a change, seen by
// every master (the watch on the bucket).
type KeyChange struct {
	ID            string
	Before, After []pki.KeyState
}

// Has reports whether states holds st.
func Has(states []pki.KeyState, st pki.KeyState) bool {
	for _, s := range states {
		if s == st {
			return true
		}
	}
	return false
}

// KeyStore is pki.KeyStore on a replicated KV bucket, with
// pki.FileKeyStore's semantics (Salt's _auth and salt-key). Reads for
// List come from a watched in-memory copy; decisions (Admit, Accept,
// Reject, Delete) read the bucket and write with compare-and-set.
type KeyStore struct {
	n *Node
	w watched[keyRecord]
}

var _ pki.KeyStore = (*KeyStore)(nil)

// OpenKeyStore opens the cluster's key bucket and loads it. onChange, if
// not nil, is called for every change made by any master, including this
// one (from the watch goroutine, or from the caller of a change made
// here); it must be safe for concurrent use.
func OpenKeyStore(ctx context.Context, n *Node, onChange func(KeyChange)) (*KeyStore, error) {
	kv, err := n.kv(ctx, jetstream.KeyValueConfig{Bucket: n.bucket("keys"), Description: "brine minion keys (salt-key)", History: 1})
	if err != nil {
		return nil, err
	}
	s := &KeyStore{n: n}
	s.w = watched[keyRecord]{n: n, kv: kv,
		decode: func(_ string, b []byte) (string, keyRecord, error) {
			r, err := decodeKeyRecord(b)
			return r.ID, r, err
		},
	}
	if onChange != nil {
		s.w.onChange = func(id string, before keyRecord, _ bool, after keyRecord, _ bool) {
			onChange(KeyChange{ID: id, Before: before.states(), After: after.states()})
		}
	}
	if err := s.w.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func checkID(id string) error {
	if err := pki.ValidateID(id); err != nil {
		if errors.Is(err, fs.ErrInvalid) {
			return err
		}
		return fmt.Errorf("%w (%w)", err, fs.ErrInvalid)
	}
	return nil
}

// read fetches id's record and revision (0: none) from the bucket.
func (s *KeyStore) read(ctx context.Context, id string) (keyRecord, uint64, error) {
	e, err := s.w.kv.Get(ctx, kvKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return keyRecord{ID: id, Keys: map[pki.KeyState]keyEntry{}}, 0, nil
	}
	if err != nil {
		return keyRecord{}, 0, fmt.Errorf("minion %q: key bucket: %w", id, err)
	}
	r, err := decodeKeyRecord(e.Value())
	if err != nil {
		return keyRecord{}, 0, fmt.Errorf("minion %q: %w", id, err)
	}
	if r.Keys == nil {
		r.Keys = map[pki.KeyState]keyEntry{}
	}
	return r, e.Revision(), nil
}

// errNoChange from a mutation means: decided, nothing to write.
var errNoChange = errors.New("no change")

// mutate reads id's record, lets fn change it, and writes it back only if
// nobody else wrote in between; otherwise it reads again and retries.
func (s *KeyStore) mutate(ctx context.Context, id string, fn func(r *keyRecord) error) (keyRecord, error) {
	for attempt := 0; ; attempt++ {
		r, rev, err := s.read(ctx, id)
		if err != nil {
			return keyRecord{}, err
		}
		if err := fn(&r); errors.Is(err, errNoChange) {
			return r, nil
		} else if err != nil {
			return keyRecord{}, err
		}
		var newRev uint64
		switch {
		case len(r.Keys) == 0 && rev == 0:
			return r, nil
		case len(r.Keys) == 0:
			err = s.w.kv.Delete(ctx, kvKey(id), jetstream.LastRevision(rev))
			// The marker's revision is above rev; rev+1 orders it after
			// every write this master has seen, which is all that matters.
			newRev = rev + 1
		default:
			var b []byte
			if b, err = json.Marshal(r); err != nil {
				return keyRecord{}, fmt.Errorf("minion %q: encode key record: %w", id, err)
			}
			if rev == 0 {
				newRev, err = s.w.kv.Create(ctx, kvKey(id), b)
			} else {
				newRev, err = s.w.kv.Update(ctx, kvKey(id), b, rev)
			}
		}
		if err == nil {
			s.w.set(id, r, len(r.Keys) > 0, newRev, true)
			return r, nil
		}
		if !casErr(err) {
			return keyRecord{}, fmt.Errorf("minion %q: key bucket: %w", id, err)
		}
		if attempt >= 50 {
			return keyRecord{}, fmt.Errorf("minion %q: key bucket: gave up after %d conflicting writes: %w", id, attempt+1, err)
		}
	}
}

// Lookup implements pki.KeyStore, from the bucket.
func (s *KeyStore) Lookup(ctx context.Context, id string) ([]pki.Key, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	r, _, err := s.read(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.keys(), nil
}

// Admit implements pki.KeyStore with FileKeyStore's decision table.
func (s *KeyStore) Admit(ctx context.Context, id string, pub ed25519.PublicKey, autoAccept bool) (pki.KeyState, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("minion %q: public key is %d bytes, want %d: %w", id, len(pub), ed25519.PublicKeySize, fs.ErrInvalid)
	}
	var out pki.KeyState
	_, err := s.mutate(ctx, id, func(r *keyRecord) error {
		now := time.Now().UTC()
		// Rejected wins whatever key is presented; nothing is recorded.
		if _, ok := r.Keys[pki.Rejected]; ok {
			out = pki.Rejected
			return errNoChange
		}
		if k, ok := r.Keys[pki.Accepted]; ok {
			if ed25519.PublicKey(k.Pub).Equal(pub) {
				out = pki.Accepted
				return errNoChange
			}
			// An impostor: keep the real key, record this one.
			out = pki.Denied
			r.Keys[pki.Denied] = keyEntry{Pub: pub, Updated: now}
			return nil
		}
		if k, ok := r.Keys[pki.Pending]; ok {
			if !ed25519.PublicKey(k.Pub).Equal(pub) {
				out = pki.Denied
				r.Keys[pki.Denied] = keyEntry{Pub: pub, Updated: now}
				return nil
			}
			if !autoAccept {
				out = pki.Pending
				return errNoChange
			}
			out = pki.Accepted
			delete(r.Keys, pki.Pending)
			r.Keys[pki.Accepted] = keyEntry{Pub: pub, Updated: now}
			return nil
		}
		out = pki.Pending
		if autoAccept {
			out = pki.Accepted
		}
		r.Keys[out] = keyEntry{Pub: pub, Updated: now}
		return nil
	})
	if err != nil {
		return "", err
	}
	return out, nil
}

// Accept implements pki.KeyStore: pending, else rejected, becomes accepted.
func (s *KeyStore) Accept(ctx context.Context, id string) (pki.Key, error) {
	return s.transition(ctx, id, pki.Accepted, pki.Pending, pki.Rejected)
}

// Reject implements pki.KeyStore: pending, else accepted, becomes rejected.
func (s *KeyStore) Reject(ctx context.Context, id string) (pki.Key, error) {
	return s.transition(ctx, id, pki.Rejected, pki.Pending, pki.Accepted)
}

func (s *KeyStore) transition(ctx context.Context, id string, to pki.KeyState, from ...pki.KeyState) (pki.Key, error) {
	if err := checkID(id); err != nil {
		return pki.Key{}, err
	}
	r, err := s.mutate(ctx, id, func(r *keyRecord) error {
		for _, st := range from {
			if k, ok := r.Keys[st]; ok {
				delete(r.Keys, st)
				k.Updated = time.Now().UTC()
				r.Keys[to] = k
				return nil
			}
		}
		names := make([]string, len(from))
		for i, st := range from {
			names[i] = string(st)
		}
		return fmt.Errorf("minion %q: no %s key to make %s: %w", id, strings.Join(names, " or "), to, fs.ErrNotExist)
	})
	if err != nil {
		return pki.Key{}, err
	}
	for _, k := range r.keys() {
		if k.State == to {
			return k, nil
		}
	}
	return pki.Key{}, fmt.Errorf("minion %q: key vanished: %w", id, fs.ErrNotExist)
}

// Delete implements pki.KeyStore: the id leaves every state.
func (s *KeyStore) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := s.mutate(ctx, id, func(r *keyRecord) error {
		if len(r.Keys) == 0 {
			return fmt.Errorf("minion %q: no key to delete: %w", id, fs.ErrNotExist)
		}
		r.Keys = map[pki.KeyState]keyEntry{}
		return nil
	})
	return err
}

// List implements pki.KeyStore from the watched copy: accepted, denied,
// pending, rejected, each sorted by id.
func (s *KeyStore) List(ctx context.Context) ([]pki.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	byState := map[pki.KeyState][]pki.Key{}
	s.w.each(func(_ string, r keyRecord) {
		for _, k := range r.keys() {
			byState[k.State] = append(byState[k.State], k)
		}
	})
	var out []pki.Key
	for _, st := range keyOrder {
		ks := byState[st]
		sort.Slice(ks, func(i, j int) bool { return ks[i].ID < ks[j].ID })
		out = append(out, ks...)
	}
	return out, nil
}

// States returns the states cached for id (watched copy).
func (s *KeyStore) States(id string) []pki.KeyState {
	r, _, _ := s.w.get(id)
	return r.states()
}

// Import copies keys from another store (a master's files from before it
// joined the cluster) without overwriting any id the cluster knows.
func (s *KeyStore) Import(ctx context.Context, from pki.KeyStore) (int, error) {
	keys, err := from.List(ctx)
	if err != nil {
		return 0, err
	}
	byID := map[string]keyRecord{}
	for _, k := range keys {
		r, ok := byID[k.ID]
		if !ok {
			r = keyRecord{ID: k.ID, Keys: map[pki.KeyState]keyEntry{}}
		}
		r.Keys[k.State] = keyEntry{Pub: k.PublicKey, Updated: k.Updated.UTC()}
		byID[k.ID] = r
	}
	n := 0
	for id, r := range byID {
		b, err := json.Marshal(r)
		if err != nil {
			return n, err
		}
		rev, err := s.w.kv.Create(ctx, kvKey(id), b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("minion %q: import key: %w", id, err)
		}
		s.w.set(id, r, true, rev, true)
		n++
	}
	return n, nil
}

// Close stops the watch.
func (s *KeyStore) Close() { s.w.stop() }
