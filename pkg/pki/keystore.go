package pki

// The master's key store: which minion ids are allowed in, with which
// public key. Semantics follow salt-key and Salt's master-side _auth; the
// on-disk layout is Salt's pki_dir layout so operators find keys where they
// expect them. KeyStore is one of the seams a clustered master replaces
// (with a JetStream KV bucket), so it stays small.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/brine-cm/brine/pkg/minionid"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// KeyState is where a minion's key sits, as salt-key names the lists.
type KeyState string

const (
	Accepted KeyState = "accepted"
	Pending  KeyState = "pending"
	Rejected KeyState = "rejected"
	Denied   KeyState = "denied"
)

// Key is one recorded public key for a minion id. An id can have two: an
// accepted key and a denied one (an impostor's, kept for the operator).
type Key struct {
	ID          string            `json:"id"`
	State       KeyState          `json:"state"`
	PublicKey   ed25519.PublicKey `json:"public_key"`
	Fingerprint string            `json:"fingerprint"`
	Updated     time.Time         `json:"updated"`
}

// KeyStore records minion keys and their acceptance state. Errors for a
// missing key wrap fs.ErrNotExist; errors for a malformed id or key wrap
// fs.ErrInvalid, so callers can tell them apart with errors.Is.
type KeyStore interface {
	// Lookup returns every key recorded for id (accepted and denied may
	// coexist), or an empty slice if none.
	Lookup(ctx context.Context, id string) ([]Key, error)
	// Admit decides a connecting minion's state and records it.
	Admit(ctx context.Context, id string, pub ed25519.PublicKey, autoAccept bool) (KeyState, error)
	// Accept moves a pending (or else rejected) key to accepted.
	Accept(ctx context.Context, id string) (Key, error)
	// Reject moves a pending (or else accepted) key to rejected.
	Reject(ctx context.Context, id string) (Key, error)
	// Delete removes id from every state.
	Delete(ctx context.Context, id string) error
	// List returns every key, sorted by state then id.
	List(ctx context.Context) ([]Key, error)
}

// Fingerprint is the SHA-256 of a raw public key in Salt's finger format:
// lowercase hex pairs joined by ':'.
func Fingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	h := hex.EncodeToString(sum[:])
	var sb strings.Builder
	sb.Grow(len(h) + len(h)/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// Salt's directory names under pki_dir, in the order salt-key -L prints
// them (which is also the alphabetical order of the state names).
var ksStates = []struct {
	state KeyState
	dir   string
}{
	{Accepted, "minions"},
	{Denied, "minions_denied"},
	{Pending, "minions_pre"},
	{Rejected, "minions_rejected"},
}

func ksDir(s KeyState) string {
	for _, st := range ksStates {
		if st.state == s {
			return st.dir
		}
	}
	panic("pki: unknown key state " + string(s))
}

// FileKeyStore keeps keys in Salt's pki_dir layout, one PEM file per id.
// One mutex serialises every operation: key changes are rare and each is a
// handful of syscalls, while a read-check-write race here could let two
// connections for one id both be admitted with different keys.
type FileKeyStore struct {
	dir string
	mu  sync.Mutex
}

var _ KeyStore = (*FileKeyStore)(nil)

// OpenFileKeyStore opens (creating if needed) a key store rooted at dir.
// The directories are forced to 0700: they decide who may run commands.
func OpenFileKeyStore(dir string) (*FileKeyStore, error) {
	if dir == "" {
		return nil, fmt.Errorf("key store: empty directory: %w", fs.ErrInvalid)
	}
	paths := []string{dir}
	for _, st := range ksStates {
		paths = append(paths, filepath.Join(dir, st.dir))
	}
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("key store %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return nil, fmt.Errorf("key store %s: %w", p, err)
		}
	}
	return &FileKeyStore{dir: dir}, nil
}

// ksValidateID is the shared minion id rule (pkg/minionid).
func ksValidateID(id string) error { return minionid.Validate(id) }

func (s *FileKeyStore) path(st KeyState, id string) string {
	return filepath.Join(s.dir, ksDir(st), id)
}

func ksEncode(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ksDecode parses one key file's content; name is only for the error.
func ksDecode(name string, b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("key file %s: no PEM PUBLIC KEY block: %w", name, fs.ErrInvalid)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w (%w)", name, err, fs.ErrInvalid)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key file %s: %T is not an Ed25519 key: %w", name, k, fs.ErrInvalid)
	}
	return pub, nil
}

// read loads id's key in state st; ok is false when there is none.
func (s *FileKeyStore) read(st KeyState, id string) (Key, bool, error) {
	p := s.path(st, id)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Key{}, false, nil
	}
	if err != nil {
		return Key{}, false, fmt.Errorf("key file %s: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, false, fmt.Errorf("key file %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, false, fmt.Errorf("key file %s: not a regular file: %w", p, fs.ErrInvalid)
	}
	// A PEM Ed25519 key is ~113 bytes; a cap keeps a stray huge file from
	// being slurped into memory.
	const maxKeyFile = 16 << 10
	if fi.Size() > maxKeyFile {
		return Key{}, false, fmt.Errorf("key file %s: %d bytes is too large for a public key: %w", p, fi.Size(), fs.ErrInvalid)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return Key{}, false, fmt.Errorf("key file %s: %w", p, err)
	}
	pub, err := ksDecode(p, b)
	if err != nil {
		return Key{}, false, err
	}
	return Key{ID: id, State: st, PublicKey: pub, Fingerprint: Fingerprint(pub), Updated: fi.ModTime()}, true, nil
}

// write records pub for id in state st: temp file, fsync, rename, fsync
// the directory, so a crash leaves the old key or the new one.
func (s *FileKeyStore) write(st KeyState, id string, pub ed25519.PublicKey) error {
	tmp, err := s.stage(st, id, pub)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path(st, id)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("minion %q: %w", id, err)
	}
	return ksSyncDir(filepath.Dir(tmp))
}

// stage writes pub to a synced temp file in st's directory and returns
// its path, for a rename into place.
func (s *FileKeyStore) stage(st KeyState, id string, pub ed25519.PublicKey) (string, error) {
	data, err := ksEncode(pub)
	if err != nil {
		return "", fmt.Errorf("minion %q: encode key: %w", id, err)
	}
	dir := filepath.Join(s.dir, ksDir(st))
	// Temp names start with '.', which no valid id does, so a leftover
	// from a crash can never be mistaken for a minion.
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("minion %q: %w", id, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("minion %q: write %s: %w", id, tmp, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("minion %q: sync %s: %w", id, tmp, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("minion %q: close %s: %w", id, tmp, err)
	}
	ok = true
	return tmp, nil
}

// move changes id's state by renaming its file, which is atomic: there is
// no moment where the key is in both lists or in neither.
func (s *FileKeyStore) move(from, to KeyState, id string) (Key, error) {
	src, dst := s.path(from, id), s.path(to, id)
	now := time.Now()
	// The mtime records when the key last changed state (Key.Updated).
	if err := os.Chtimes(src, now, now); err != nil {
		return Key{}, fmt.Errorf("minion %q: %w", id, err)
	}
	if err := os.Rename(src, dst); err != nil {
		return Key{}, fmt.Errorf("minion %q: %w", id, err)
	}
	if err := ksSyncDir(filepath.Dir(dst)); err != nil {
		return Key{}, err
	}
	if err := ksSyncDir(filepath.Dir(src)); err != nil {
		return Key{}, err
	}
	k, found, err := s.read(to, id)
	if err != nil {
		return Key{}, err
	}
	if !found {
		return Key{}, fmt.Errorf("minion %q: key vanished from %s: %w", id, dst, fs.ErrNotExist)
	}
	return k, nil
}

func (s *FileKeyStore) remove(st KeyState, id string) (bool, error) {
	p := s.path(st, id)
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("minion %q: %w", id, err)
	}
	return true, ksSyncDir(filepath.Dir(p))
}

func ksSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Lookup returns every key recorded for id, in List order.
func (s *FileKeyStore) Lookup(ctx context.Context, id string) ([]Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ksValidateID(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookup(id)
}

func (s *FileKeyStore) lookup(id string) ([]Key, error) {
	var keys []Key
	for _, st := range ksStates {
		k, ok, err := s.read(st.state, id)
		if err != nil {
			return nil, err
		}
		if ok {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Admit applies Salt's master-side auth decision for a minion presenting
// pub under id, records the outcome, and returns it. Only Accepted means
// the minion may be served.
func (s *FileKeyStore) Admit(ctx context.Context, id string, pub ed25519.PublicKey, autoAccept bool) (KeyState, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := ksValidateID(id); err != nil {
		return "", err
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("minion %q: public key is %d bytes, want %d: %w", id, len(pub), ed25519.PublicKeySize, fs.ErrInvalid)
	}
	s.mu.Lock()
	st, needKey, _, err := s.admitLocked(id, pub, autoAccept, "")
	s.mu.Unlock()
	if !needKey || err != nil {
		return st, err
	}
	// A new id. Its key file is written and synced without holding the
	// store, and its directory synced after: enrolments (a fleet's first
	// contact under autosign) then share the disk's flushes instead of
	// queuing for the store one fsync pair at a time (brine-bench: 4,800
	// of 7,500 connections waited here). The key may be listed before its
	// directory entry is durable; Admit returns only after it is.
	target := Pending
	if autoAccept {
		target = Accepted
	}
	tmp, err := s.stage(target, id, pub)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp) // nothing left to remove once installed
	s.mu.Lock()
	st, _, installed, err := s.admitLocked(id, pub, autoAccept, tmp)
	s.mu.Unlock()
	if err != nil || !installed {
		return st, err
	}
	return st, ksSyncDir(filepath.Dir(tmp))
}

// admitLocked is Admit's decision, under s.mu. For an id with no record
// it installs staged (a synced temp file from stage) as the new key and
// reports installed; without one it reports needKey and records nothing.
func (s *FileKeyStore) admitLocked(id string, pub ed25519.PublicKey, autoAccept bool, staged string) (st KeyState, needKey, installed bool, err error) {
	// Rejected wins whatever key is presented, as in Salt: the operator
	// said no to this id, and nothing is recorded.
	if _, ok, err := s.read(Rejected, id); err != nil {
		return "", false, false, err
	} else if ok {
		return Rejected, false, false, nil
	}
	if k, ok, err := s.read(Accepted, id); err != nil {
		return "", false, false, err
	} else if ok {
		if k.PublicKey.Equal(pub) {
			return Accepted, false, false, nil
		}
		// Someone else claims an accepted id: keep the real key, record
		// the impostor's for the operator to inspect.
		st, err := s.deny(id, pub)
		return st, false, false, err
	}
	if k, ok, err := s.read(Pending, id); err != nil {
		return "", false, false, err
	} else if ok {
		if !k.PublicKey.Equal(pub) {
			st, err := s.deny(id, pub)
			return st, false, false, err
		}
		if !autoAccept {
			return Pending, false, false, nil
		}
		if _, err := s.move(Pending, Accepted, id); err != nil {
			return "", false, false, err
		}
		return Accepted, false, false, nil
	}
	if staged == "" {
		return "", true, false, nil
	}
	st = Pending
	if autoAccept {
		st = Accepted
	}
	if err := os.Rename(staged, s.path(st, id)); err != nil {
		return "", false, false, fmt.Errorf("minion %q: %w", id, err)
	}
	return st, false, true, nil
}

// deny records a key that lost to the one already held for id.
func (s *FileKeyStore) deny(id string, pub ed25519.PublicKey) (KeyState, error) {
	if err := s.write(Denied, id, pub); err != nil {
		return "", err
	}
	return Denied, nil
}

// Accept is salt-key -a (with --include-rejected): a pending key, or
// failing that a rejected one, becomes accepted. A denied record is left
// alone: it is evidence, not a candidate.
func (s *FileKeyStore) Accept(ctx context.Context, id string) (Key, error) {
	return s.transition(ctx, id, Accepted, Pending, Rejected)
}

// Reject is salt-key -r (with --include-accepted): a pending key, or
// failing that an accepted one, becomes rejected.
func (s *FileKeyStore) Reject(ctx context.Context, id string) (Key, error) {
	return s.transition(ctx, id, Rejected, Pending, Accepted)
}

func (s *FileKeyStore) transition(ctx context.Context, id string, to KeyState, from ...KeyState) (Key, error) {
	if err := ctx.Err(); err != nil {
		return Key{}, err
	}
	if err := ksValidateID(id); err != nil {
		return Key{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range from {
		if _, ok, err := s.read(st, id); err != nil {
			return Key{}, err
		} else if ok {
			return s.move(st, to, id)
		}
	}
	names := make([]string, len(from))
	for i, st := range from {
		names[i] = string(st)
	}
	return Key{}, fmt.Errorf("minion %q: no %s key to make %s: %w", id, strings.Join(names, " or "), to, fs.ErrNotExist)
}

// Delete is salt-key -d: id disappears from every list, denied included.
func (s *FileKeyStore) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ksValidateID(id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := false
	for _, st := range ksStates {
		ok, err := s.remove(st.state, id)
		if err != nil {
			return err
		}
		removed = removed || ok
	}
	if !removed {
		return fmt.Errorf("minion %q: no key to delete: %w", id, fs.ErrNotExist)
	}
	return nil
}

// List is salt-key -L: every key, accepted, denied, pending, rejected, each
// group sorted by id. Files whose names are not valid ids (temp files,
// editor droppings) and non-regular files are skipped, not reported.
func (s *FileKeyStore) List(ctx context.Context) ([]Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []Key
	for _, st := range ksStates {
		dir := filepath.Join(s.dir, st.dir)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("key store %s: %w", dir, err)
		}
		ids := make([]string, 0, len(ents))
		for _, e := range ents {
			if !e.Type().IsRegular() || ksValidateID(e.Name()) != nil {
				continue
			}
			ids = append(ids, e.Name())
		}
		sort.Strings(ids)
		for _, id := range ids {
			k, ok, err := s.read(st.state, id)
			if err != nil {
				return nil, err
			}
			if ok {
				keys = append(keys, k)
			}
		}
	}
	return keys, nil
}

// Count is how many keys are in state st, without reading them: the
// master checks it on every new id to cap the pending list.
func (s *FileKeyStore) Count(ctx context.Context, st KeyState) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dir := filepath.Join(s.dir, ksDir(st))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("key store %s: %w", dir, err)
	}
	n := 0
	for _, e := range ents {
		if e.Type().IsRegular() && ksValidateID(e.Name()) == nil {
			n++
		}
	}
	return n, nil
}
