package mine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// persistDelay coalesces a burst of Puts (every minion reconnecting after a
// master restart) into one file write.
const persistDelay = 250 * time.Millisecond

const fileVersion = 1

// MemStore is the single-master Store: go-memdb in memory, written behind
// to a JSON file so the mine survives a master restart.
type MemStore struct {
	db   *memdb.MemDB
	path string
	now  func() time.Time
	log  *slog.Logger

	gen     atomic.Uint64 // bumped after every committed write
	saved   atomic.Uint64 // gen the file reflects
	writeMu sync.Mutex    // one file write at a time
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	once    sync.Once
	lastErr atomic.Pointer[error]
}

var _ Store = (*MemStore)(nil)

// NewMemStore opens the mine. path is the JSON file in the master's
// data_dir; "" keeps the mine in memory only. An existing file is loaded;
// a missing one is created on the first write.
func NewMemStore(path string) (*MemStore, error) {
	db, err := memdb.NewMemDB(stateSchema())
	if err != nil {
		return nil, fmt.Errorf("mine: build schema: %w", err)
	}
	s := &MemStore{
		db:   db,
		path: path,
		now:  time.Now,
		log:  slog.Default().With("component", "mine"),
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if path == "" {
		close(s.done)
		return s, nil
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	go s.persistLoop()
	return s, nil
}

// Put implements Store.
func (s *MemStore) Put(ctx context.Context, minionID string, data map[string]any, removed []string, replace bool) ([]string, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	if minionID == "" {
		return nil, errors.New("mine put: empty minion id")
	}
	type incoming struct {
		value        any
		tgt, tgtType string
	}
	in := make(map[string]incoming, len(data))
	for fn, raw := range data {
		if fn == "" {
			return nil, fmt.Errorf("mine put from %s: empty function name", minionID)
		}
		v, tgt, typ := Decode(raw)
		nv, err := normalize(v)
		if err != nil {
			return nil, fmt.Errorf("mine put from %s: function %s: %w", minionID, fn, err)
		}
		in[fn] = incoming{nv, tgt, typ}
	}

	now := s.now().UTC()
	txn := s.db.Txn(true)
	defer txn.Abort()

	var changed []string
	for fn, inc := range in {
		raw, err := txn.First(tableMine, indexID, minionID, fn)
		if err != nil {
			return nil, fmt.Errorf("mine put from %s: lookup %s: %w", minionID, fn, err)
		}
		old, _ := raw.(*Entry)
		if old == nil || old.AllowTgt != inc.tgt || old.AllowTgtType != inc.tgtType || !reflect.DeepEqual(old.Value, inc.value) {
			changed = append(changed, fn)
		}
		e := &Entry{MinionID: minionID, Function: fn, Value: inc.value, AllowTgt: inc.tgt, AllowTgtType: inc.tgtType, Updated: now}
		if err := txn.Insert(tableMine, e); err != nil {
			return nil, fmt.Errorf("mine put from %s: insert %s: %w", minionID, fn, err)
		}
	}

	drop := removed
	if replace {
		drop = nil
		it, err := txn.Get(tableMine, indexMinion, minionID)
		if err != nil {
			return nil, fmt.Errorf("mine put from %s: list: %w", minionID, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if e := raw.(*Entry); !hasKey(in, e.Function) {
				drop = append(drop, e.Function)
			}
		}
	}
	for _, fn := range drop {
		if hasKey(in, fn) {
			continue // data wins over a contradictory removed list
		}
		n, err := txn.DeleteAll(tableMine, indexID, minionID, fn)
		if err != nil {
			return nil, fmt.Errorf("mine put from %s: remove %s: %w", minionID, fn, err)
		}
		if n > 0 {
			changed = append(changed, fn)
		}
	}
	if err := s.touchMinion(txn, minionID, now); err != nil {
		return nil, err
	}
	txn.Commit()
	s.wrote()
	sort.Strings(changed)
	return changed, nil
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

// touchMinion keeps the minions table in step with the mine table: a row
// with the report time while the minion has entries, none otherwise.
func (s *MemStore) touchMinion(txn *memdb.Txn, minionID string, at time.Time) error {
	left, err := txn.First(tableMine, indexMinion, minionID)
	if err != nil {
		return fmt.Errorf("mine: minion %s: %w", minionID, err)
	}
	if left == nil {
		if _, err := txn.DeleteAll(tableMinions, indexID, minionID); err != nil {
			return fmt.Errorf("mine: minion %s: %w", minionID, err)
		}
		return nil
	}
	if at.IsZero() {
		return nil // a delete keeps the minion's last report time
	}
	if err := txn.Insert(tableMinions, &minionRow{MinionID: minionID, UpdatedNano: uint64(at.UnixNano())}); err != nil {
		return fmt.Errorf("mine: minion %s: %w", minionID, err)
	}
	return nil
}

// Get implements Store.
func (s *MemStore) Get(ctx context.Context, ids []string, function string) (map[string]any, error) {
	return s.GetWatch(ctx, nil, ids, function)
}

// pointLookupMax is the id count up to which Get looks each minion up;
// beyond it one ordered walk of the function index with a set is cheaper
// (a compound-key lookup costs a dozen small allocations).
const pointLookupMax = 256

// GetWatch is Get that also adds to ws channels that fire when what was
// read changes, for blocking queries (ws.WatchCtx). ws may be nil.
func (s *MemStore) GetWatch(ctx context.Context, ws memdb.WatchSet, ids []string, function string) (map[string]any, error) {
	out := make(map[string]any, min(len(ids), 1<<16))
	err := s.lookup(ctx, ws, ids, function, func(e *Entry) { out[e.MinionID] = e.Value })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetEntries is Get with the entries' ACL, used by the package-level Get to
// apply allow_tgt without a second lookup per minion.
func (s *MemStore) GetEntries(ctx context.Context, ids []string, function string) (map[string]Entry, error) {
	out := make(map[string]Entry, min(len(ids), 1<<16))
	err := s.lookup(ctx, nil, ids, function, func(e *Entry) { out[e.MinionID] = *e })
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *MemStore) lookup(ctx context.Context, ws memdb.WatchSet, ids []string, function string, found func(*Entry)) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	txn := s.db.Txn(false)
	if len(ids) <= pointLookupMax {
		for _, id := range ids {
			ch, raw, err := txn.FirstWatch(tableMine, indexID, id, function)
			if err != nil {
				return fmt.Errorf("mine get %s from %s: %w", function, id, err)
			}
			if ws != nil {
				ws.Add(ch)
			}
			if raw != nil {
				found(raw.(*Entry))
			}
		}
		return nil
	}
	want := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		want[id] = struct{}{}
	}
	it, err := txn.Get(tableMine, indexFunction, function)
	if err != nil {
		return fmt.Errorf("mine get %s: %w", function, err)
	}
	if ws != nil {
		ws.Add(it.WatchCh())
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if e := raw.(*Entry); hasKey(want, e.MinionID) {
			found(e)
		}
	}
	return nil
}

// Entries implements Store.
func (s *MemStore) Entries(ctx context.Context, minionID string) ([]Entry, error) {
	return s.EntriesWatch(ctx, nil, minionID)
}

// EntriesWatch is Entries that adds to ws a channel firing when that
// minion's mine changes. ws may be nil.
func (s *MemStore) EntriesWatch(ctx context.Context, ws memdb.WatchSet, minionID string) ([]Entry, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	txn := s.db.Txn(false)
	it, err := txn.Get(tableMine, indexMinion, minionID)
	if err != nil {
		return nil, fmt.Errorf("mine entries of %s: %w", minionID, err)
	}
	if ws != nil {
		ws.Add(it.WatchCh())
	}
	var out []Entry
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*Entry))
	}
	return out, nil
}

// Delete implements Store.
func (s *MemStore) Delete(ctx context.Context, minionID string, functions ...string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	txn := s.db.Txn(true)
	defer txn.Abort()
	n := 0
	if len(functions) == 0 {
		d, err := txn.DeleteAll(tableMine, indexMinion, minionID)
		if err != nil {
			return fmt.Errorf("mine flush %s: %w", minionID, err)
		}
		n += d
	}
	for _, fn := range functions {
		d, err := txn.DeleteAll(tableMine, indexID, minionID, fn)
		if err != nil {
			return fmt.Errorf("mine delete %s from %s: %w", fn, minionID, err)
		}
		n += d
	}
	if n == 0 {
		return nil
	}
	if err := s.touchMinion(txn, minionID, time.Time{}); err != nil {
		return err
	}
	txn.Commit()
	s.wrote()
	return nil
}

// Expire implements Store.
func (s *MemStore) Expire(ctx context.Context, olderThan time.Time) ([]string, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	if olderThan.UnixNano() <= 0 {
		return nil, nil
	}
	cutoff := uint64(olderThan.UnixNano())
	txn := s.db.Txn(true)
	defer txn.Abort()
	it, err := txn.Get(tableMinions, indexUpdated)
	if err != nil {
		return nil, fmt.Errorf("mine expire: %w", err)
	}
	var stale []*minionRow
	for raw := it.Next(); raw != nil; raw = it.Next() {
		r := raw.(*minionRow)
		if r.UpdatedNano >= cutoff {
			break // the index is ordered oldest first
		}
		stale = append(stale, r)
	}
	if len(stale) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(stale))
	for _, r := range stale {
		if _, err := txn.DeleteAll(tableMine, indexMinion, r.MinionID); err != nil {
			return nil, fmt.Errorf("mine expire %s: %w", r.MinionID, err)
		}
		if err := txn.Delete(tableMinions, r); err != nil {
			return nil, fmt.Errorf("mine expire %s: %w", r.MinionID, err)
		}
		ids = append(ids, r.MinionID)
	}
	txn.Commit()
	s.wrote()
	sort.Strings(ids)
	return ids, nil
}

// Minions lists the minions that have mine data, sorted.
func (s *MemStore) Minions(ctx context.Context) ([]string, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	it, err := s.db.Txn(false).Get(tableMinions, indexID)
	if err != nil {
		return nil, fmt.Errorf("mine minions: %w", err)
	}
	var out []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*minionRow).MinionID)
	}
	return out, nil
}

func (s *MemStore) usable(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

func (s *MemStore) wrote() {
	s.gen.Add(1)
	if s.path == "" {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Close flushes pending writes to the file and stops the writer. The
// store is unusable afterwards.
func (s *MemStore) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		if s.path == "" {
			return
		}
		close(s.stop)
		<-s.done
		err = s.Flush()
	})
	return err
}

// Flush writes the mine to its file now if anything changed since the
// last write. It returns the write error, or the last background one.
func (s *MemStore) Flush() error {
	if s.path == "" {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	g := s.gen.Load()
	if g == s.saved.Load() {
		if p := s.lastErr.Load(); p != nil {
			return *p
		}
		return nil
	}
	if err := s.writeFile(); err != nil {
		s.lastErr.Store(&err)
		return err
	}
	s.saved.Store(g)
	s.lastErr.Store(nil)
	return nil
}

func (s *MemStore) persistLoop() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		t := time.NewTimer(persistDelay)
		select {
		case <-s.stop:
			t.Stop()
			return // Close flushes
		case <-t.C:
		}
		if err := s.Flush(); err != nil {
			s.log.Error("mine: persisting failed, will retry on the next change", "path", s.path, "err", err)
		}
	}
}

// fileData is the on-disk form.
type fileData struct {
	Version int                  `json:"version"`
	Minions map[string]time.Time `json:"minions"`
	Entries []Entry              `json:"entries"`
}

func (s *MemStore) writeFile() error {
	txn := s.db.Txn(false) // a consistent snapshot, taken without locking writers
	fd := fileData{Version: fileVersion, Minions: map[string]time.Time{}, Entries: []Entry{}}
	mit, err := txn.Get(tableMinions, indexID)
	if err != nil {
		return fmt.Errorf("mine: snapshot: %w", err)
	}
	for raw := mit.Next(); raw != nil; raw = mit.Next() {
		r := raw.(*minionRow)
		fd.Minions[r.MinionID] = time.Unix(0, int64(r.UpdatedNano)).UTC()
	}
	eit, err := txn.Get(tableMine, indexID)
	if err != nil {
		return fmt.Errorf("mine: snapshot: %w", err)
	}
	for raw := eit.Next(); raw != nil; raw = eit.Next() {
		fd.Entries = append(fd.Entries, *raw.(*Entry))
	}
	return writeAtomic(s.path, func(w *bufio.Writer) error {
		return json.NewEncoder(w).Encode(fd)
	})
}

// writeAtomic replaces path with what fill writes: temp file in the same
// directory, fsync, rename, fsync of the directory. A crash leaves either
// the old file or the new one, never a torn one.
func writeAtomic(path string, fill func(*bufio.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("mine: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil { // mine data can be sensitive
		return fmt.Errorf("mine: write %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	if err = fill(w); err != nil {
		return fmt.Errorf("mine: encode %s: %w", path, err)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("mine: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("mine: fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("mine: close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("mine: rename %s to %s: %w", tmp, path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		derr = d.Sync()
		d.Close()
		if derr != nil {
			return fmt.Errorf("mine: fsync directory %s: %w", dir, derr)
		}
	}
	return nil
}

func (s *MemStore) load() error {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mine: read %s: %w", s.path, err)
	}
	var fd fileData
	if err := json.Unmarshal(b, &fd); err != nil {
		return fmt.Errorf("mine: parse %s: %w", s.path, err)
	}
	if fd.Version != fileVersion {
		return fmt.Errorf("mine: %s: unsupported version %d (want %d)", s.path, fd.Version, fileVersion)
	}
	txn := s.db.Txn(true)
	defer txn.Abort()
	newest := map[string]time.Time{}
	for i := range fd.Entries {
		e := fd.Entries[i]
		if e.MinionID == "" || e.Function == "" {
			return fmt.Errorf("mine: %s: entry %d: empty minion_id or function", s.path, i)
		}
		switch {
		case e.AllowTgt == "":
			e.AllowTgtType = ""
		case e.AllowTgtType == "":
			e.AllowTgtType = "glob"
		}
		if err := txn.Insert(tableMine, &e); err != nil {
			return fmt.Errorf("mine: %s: entry %d (%s %s): %w", s.path, i, e.MinionID, e.Function, err)
		}
		if e.Updated.After(newest[e.MinionID]) {
			newest[e.MinionID] = e.Updated
		}
	}
	for id, t := range newest {
		// The recorded report time wins; entries alone give a lower bound.
		if rt, ok := fd.Minions[id]; ok && rt.After(t) {
			t = rt
		}
		if err := txn.Insert(tableMinions, &minionRow{MinionID: id, UpdatedNano: uint64(max(t.UnixNano(), 1))}); err != nil {
			return fmt.Errorf("mine: %s: minion %s: %w", s.path, id, err)
		}
	}
	txn.Commit()
	s.log.Info("mine loaded", "path", s.path, "minions", len(newest), "entries", len(fd.Entries))
	return nil
}
