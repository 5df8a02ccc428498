package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// FileStore keeps the job cache as plain files:
//
//	<dir>/<jid>/job.json         the job record, replaced atomically (rename)
//	<dir>/<jid>/returns.jsonl    every minion's return, one JSON line each
//	<dir>/<jid>/ret/<minion>.json  returns written by brine before the log
//	                               (read, never written)
//
// The returns log is append-only and group-committed: the returns of a
// fan-out that arrive together share one write. What reaches the disk
// when is in docs/keys-and-jobs.md ("Job cache").
type FileStore struct {
	dir string
	// Prune takes the write side so it never deletes a job directory
	// while a return is being appended to it; everything else shares the
	// read side and runs in parallel.
	mu sync.RWMutex

	// SyncReturns fsyncs the returns log before AddReturn returns. Off by
	// default, like Salt's local job cache, which never fsyncs: a crash
	// may lose the last seconds of returns, never tear one (a torn last
	// line is dropped on the next read and cut off before the next
	// append). When on, concurrent returns share one fsync.
	SyncReturns bool
	// SyncEvery bounds how long a saved job record waits to be made
	// durable (DefaultSyncEvery when <= 0; see syncTree). SaveJob itself
	// only writes and renames, so publishing a job never waits for the
	// disk. Set it before the first SaveJob.
	SyncEvery time.Duration
	// MaxOpenLogs bounds the returns logs held open (DefaultMaxOpenLogs
	// when <= 0); the least recently used idle one is closed first.
	MaxOpenLogs int

	logsMu sync.Mutex
	logs   map[string]*logRef
	// sweep closes idle logs; armed only while logs are open, so a
	// finished fan-out's duplicate set is freed without further traffic.
	sweep     *time.Timer
	idleAfter time.Duration // idleLogAfter; shorter in tests
	// fresh holds jids whose directory this store created: they have no
	// returns yet, so their first return creates the log without reading
	// anything (bounded: forgetting one only costs that shortcut).
	fresh map[string]struct{}

	// flushMu makes the syncer and Flush take turns, so Flush returning
	// means every record saved before it is on disk.
	flushMu sync.Mutex
	dirtyMu sync.Mutex
	dirty   map[string]struct{} // jids whose job.json awaits fsync
	syncing bool                // the background syncer is running
}

var _ Store = (*FileStore)(nil)

const (
	jobFile      = "job.json"
	legacyRetDir = "ret"

	// DefaultSyncEvery: a job record is durable at most this long after
	// SaveJob returned.
	DefaultSyncEvery = time.Second
	// DefaultMaxOpenLogs: a few fan-outs in flight plus slow stragglers.
	DefaultMaxOpenLogs = 64
	// idleLogAfter: a returns log nobody appended to for this long is
	// closed (its duplicate set is rebuilt from disk if a straggler
	// answers later).
	idleLogAfter = 30 * time.Second
)

func logger() *slog.Logger { return slog.Default().With("component", "job-cache") }

// logRef is an entry of the open-log table. ready closes once log (or
// err) is set, so concurrent first returns for a job load it once.
type logRef struct {
	ready   chan struct{}
	log     *jobLog
	err     error
	refs    int // AddReturn calls using it; guarded by FileStore.logsMu
	lastUse time.Time
}

// OpenFileStore opens (creating if needed) a job cache rooted at dir.
// Returns can carry secrets (pillar data, command output), so the cache
// is private to the master's user.
func OpenFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("job cache: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("job cache %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("job cache %s: %w", dir, err)
	}
	return &FileStore{dir: dir, logs: map[string]*logRef{}, dirty: map[string]struct{}{}, idleAfter: idleLogAfter,
		fresh: map[string]struct{}{}}, nil
}

// SaveJob records j, replacing an earlier record of the same jid (the
// master may learn the minion list only after it first saves the job).
// The record is written to a temp file and renamed into place, so a
// reader sees the old record or the new one; the fsyncs happen in the
// background within SyncEvery (or at Flush/Close).
func (s *FileStore) SaveJob(ctx context.Context, j Job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := ParseJID(j.JID)
	if err != nil {
		return fmt.Errorf("save job: %w", err)
	}
	if j.StartTime.IsZero() {
		j.StartTime = t
	}
	data, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	jobDir := filepath.Join(s.dir, j.JID)
	created := true
	if err := os.Mkdir(jobDir, 0o700); errors.Is(err, fs.ErrExist) {
		created = false
	} else if err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	if err := writeAtomic(jobDir, jobFile, data); err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	s.markDirty(j.JID)
	if created {
		s.logsMu.Lock()
		if len(s.fresh) >= 4096 {
			clear(s.fresh)
		}
		s.fresh[j.JID] = struct{}{}
		s.logsMu.Unlock()
	}
	return nil
}

// AddReturn appends r to its job's returns log. The first return from a
// minion is the only one kept: a replayed or forged second answer gets
// ErrDuplicateReturn, including after a master restart.
func (s *FileStore) AddReturn(ctx context.Context, r Return) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := ParseJID(r.JID); err != nil {
		return fmt.Errorf("return from %q: %w", r.MinionID, err)
	}
	if err := checkMinionID(r.MinionID); err != nil {
		return fmt.Errorf("return for job %s: %w", r.JID, err)
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	line = append(line, '\n')
	s.mu.RLock()
	defer s.mu.RUnlock()
	ref, err := s.acquire(r.JID)
	if err != nil {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	defer s.release(ref)
	if err := ref.log.append(r.MinionID, line, s.SyncReturns); err != nil {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	return nil
}

// acquire returns jid's open log, opening it on first use. Callers hold
// s.mu's read side, so Prune cannot delete the job meanwhile.
func (s *FileStore) acquire(jid string) (*logRef, error) {
	now := time.Now()
	s.logsMu.Lock()
	ref := s.logs[jid]
	if ref != nil {
		ref.refs++
		ref.lastUse = now
		s.logsMu.Unlock()
		<-ref.ready
		if ref.err != nil {
			s.release(ref)
			return nil, ref.err
		}
		return ref, nil
	}
	// A placeholder keeps a second caller from loading the log again, and
	// (refs > 0) keeps the entry from being evicted while it loads: a
	// load racing an eviction could miss a return and let a duplicate in.
	_, fresh := s.fresh[jid]
	delete(s.fresh, jid)
	ref = &logRef{ready: make(chan struct{}), refs: 1, lastUse: now}
	s.logs[jid] = ref
	if s.sweep == nil {
		s.sweep = time.AfterFunc(s.idleAfter, s.sweepIdle)
	}
	s.logsMu.Unlock()

	ref.log, ref.err = openLog(s.dir, jid, fresh)
	if ref.err == nil && s.SyncReturns && ref.log.created {
		// The new log's name and the job itself must be on disk before a
		// synced return can be.
		ref.err = s.syncJob(jid, true)
		if ref.err != nil {
			ref.log.close()
			ref.log = nil
		}
	}
	// Evicting only once a log really opened keeps returns for unknown
	// jids (refused with ErrNotFound) from pushing real logs out, which
	// would make them be read back from disk again and again.
	s.logsMu.Lock()
	if ref.err != nil {
		if s.logs[jid] == ref {
			delete(s.logs, jid)
		}
	} else {
		s.evictLocked()
	}
	s.logsMu.Unlock()
	close(ref.ready)
	if ref.err != nil {
		s.release(ref)
		return nil, ref.err
	}
	return ref, nil
}

func (s *FileStore) release(ref *logRef) {
	s.logsMu.Lock()
	ref.refs--
	s.logsMu.Unlock()
}

// evictLocked closes the least recently used idle logs beyond
// MaxOpenLogs. Logs in use are never closed; if all are busy the table
// grows past the bound until they are released.
func (s *FileStore) evictLocked() {
	max := s.MaxOpenLogs
	if max <= 0 {
		max = DefaultMaxOpenLogs
	}
	for len(s.logs) > max {
		var oldest string
		var oldRef *logRef
		for jid, ref := range s.logs {
			if ref.refs == 0 && (oldRef == nil || ref.lastUse.Before(oldRef.lastUse)) {
				oldest, oldRef = jid, ref
			}
		}
		if oldRef == nil {
			return
		}
		s.closeLocked(oldest, oldRef)
	}
}

// sweepIdle closes every log unused for idleLogAfter and rearms while
// any log is left open.
func (s *FileStore) sweepIdle() {
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	now := time.Now()
	for jid, ref := range s.logs {
		if ref.refs == 0 && now.Sub(ref.lastUse) >= s.idleAfter {
			s.closeLocked(jid, ref)
		}
	}
	if len(s.logs) > 0 {
		s.sweep.Reset(s.idleAfter)
	} else {
		s.sweep = nil
	}
}

// closeLocked drops an idle entry. refs == 0 means its load finished
// (the loader holds a ref until then) and no append is in flight.
func (s *FileStore) closeLocked(jid string, ref *logRef) {
	delete(s.logs, jid)
	if ref.log != nil {
		if err := ref.log.close(); err != nil {
			logger().Warn("closing a returns log", "jid", jid, "err", err)
		}
	}
}

// OpenLogs reports how many returns logs are open (for tests and metrics).
func (s *FileStore) OpenLogs() int {
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	return len(s.logs)
}

// markDirty queues jid's record for the background syncer, starting it if
// it is not running. The syncer exits once nothing is queued, so an idle
// store holds no goroutine.
func (s *FileStore) markDirty(jid string) {
	s.dirtyMu.Lock()
	s.dirty[jid] = struct{}{}
	start := !s.syncing
	s.syncing = true
	s.dirtyMu.Unlock()
	if start {
		go s.syncLoop()
	}
}

func (s *FileStore) syncLoop() {
	every := s.SyncEvery
	if every <= 0 {
		every = DefaultSyncEvery
	}
	for {
		time.Sleep(every)
		s.dirtyMu.Lock()
		if len(s.dirty) == 0 {
			s.syncing = false
			s.dirtyMu.Unlock()
			return
		}
		s.dirtyMu.Unlock()
		if err := s.syncDirty(); err != nil {
			logger().Error("syncing saved jobs to disk", "err", err)
		}
	}
}

// syncDirty makes every queued job record durable (see syncTree).
func (s *FileStore) syncDirty() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.dirtyMu.Lock()
	dirty := s.dirty
	s.dirty = map[string]struct{}{}
	s.dirtyMu.Unlock()
	if len(dirty) == 0 {
		return nil
	}
	jids := make([]string, 0, len(dirty))
	for jid := range dirty {
		jids = append(jids, jid)
	}
	// A cache directory removed under a running store (tests) has
	// nothing left to sync.
	if err := syncTree(s.dir, jids); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// syncJob fsyncs jid's record and directory (and the cache directory with
// parent). A job pruned meanwhile is not an error.
func (s *FileStore) syncJob(jid string, parent bool) error {
	jobDir := filepath.Join(s.dir, jid)
	err := syncFile(filepath.Join(jobDir, jobFile))
	if err == nil {
		err = syncDir(jobDir)
	}
	if err == nil && parent {
		err = syncDir(s.dir)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("job %s: %w", jid, err)
	}
	return nil
}

// Flush makes everything written so far durable: job records still
// waiting for the background syncer and the open returns logs.
func (s *FileStore) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	errs := []error{s.syncDirty()}
	// Held across the fsyncs so no log is closed under them; Flush is for
	// shutdown and tests, not the return path.
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	for jid, ref := range s.logs {
		select {
		case <-ref.ready:
		default:
			continue // still loading: nothing appended yet
		}
		if ref.err == nil && ref.log != nil {
			if err := ref.log.f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("job %s: %w", jid, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close flushes (see Flush) and closes every idle returns log. The master
// calls it at shutdown; the store stays usable (logs reopen on demand).
func (s *FileStore) Close() error {
	err := s.Flush(context.Background())
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	for jid, ref := range s.logs {
		if ref.refs == 0 {
			s.closeLocked(jid, ref)
		}
	}
	return err
}

// Get loads a job and all its returns, sorted by minion id: those in the
// returns log and those an older brine wrote as ret/<minion>.json. A
// minion's first return wins; lines of the log that cannot be read are
// skipped and logged, so one damaged line does not hide the others.
func (s *FileStore) Get(ctx context.Context, jid string) (Job, []Return, error) {
	if err := ctx.Err(); err != nil {
		return Job{}, nil, err
	}
	if _, err := ParseJID(jid); err != nil {
		return Job{}, nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	j, err := s.readJob(jid)
	if err != nil {
		return Job{}, nil, err
	}
	jobDir := filepath.Join(s.dir, jid)
	ids, err := legacyIDs(jobDir)
	if err != nil {
		return Job{}, nil, fmt.Errorf("job %s: %w", jid, err)
	}
	rets := make([]Return, 0, len(ids))
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		var r Return
		if err := readJSON(filepath.Join(jobDir, legacyRetDir, id+".json"), &r); err != nil {
			return Job{}, nil, fmt.Errorf("job %s: %w", jid, err)
		}
		rets = append(rets, r)
		seen[id] = struct{}{}
	}
	path := filepath.Join(jobDir, returnsFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Job{}, nil, fmt.Errorf("job %s: %w", jid, err)
	}
	// A line being appended right now is incomplete here and skipped as
	// torn: Get sees every return whose AddReturn has returned.
	_, problems := scanReturns(path, data, jid, true, func(r Return) {
		if _, dup := seen[r.MinionID]; !dup {
			rets = append(rets, r)
		}
	})
	for _, p := range problems {
		logger().Warn("skipping a line of a returns log", "err", p)
	}
	sort.Slice(rets, func(a, b int) bool { return rets[a].MinionID < rets[b].MinionID })
	return j, rets, nil
}

// errCorrupt marks a record that exists but does not decode: a crash
// between write and fsync can leave job.json empty or cut short.
var errCorrupt = errors.New("corrupt record")

func (s *FileStore) readJob(jid string) (Job, error) {
	var j Job
	err := readJSON(filepath.Join(s.dir, jid, jobFile), &j)
	if errors.Is(err, fs.ErrNotExist) {
		return Job{}, fmt.Errorf("job %s: %w", jid, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", jid, err)
	}
	return j, nil
}

// jids lists the cache's jid directories, newest first. It reads only
// names, no inodes: jids sort by time, so the directory listing alone
// orders the cache.
func (s *FileStore) jids() ([]string, error) {
	names, err := readNames(s.dir)
	if err != nil {
		return nil, fmt.Errorf("job cache %s: %w", s.dir, err)
	}
	out := names[:0]
	for _, n := range names {
		if _, err := ParseJID(n); err == nil {
			out = append(out, n)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, nil
}

// List reads job.json only for the newest limit jobs, so listing stays
// cheap however many jobs keep_jobs retains. A record a crash left
// missing, empty or cut short is skipped (and logged), not fatal: one bad
// job must not hide the rest of the history.
func (s *FileStore) List(ctx context.Context, limit int) ([]Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	jids, err := s.jids()
	if err != nil {
		return nil, err
	}
	var out []Job
	for _, jid := range jids {
		if limit > 0 && len(out) >= limit {
			break
		}
		j, err := s.readJob(jid)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if errors.Is(err, errCorrupt) {
			logger().Warn("skipping an unreadable job record", "jid", jid, "err", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// Prune removes every job whose jid time is before olderThan, closing
// its returns log first. It goes by the jid rather than file times, so
// copying or restoring the cache does not reset a job's age.
func (s *FileStore) Prune(ctx context.Context, olderThan time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	jids, err := s.jids()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, jid := range jids {
		t, _ := ParseJID(jid) // jids() kept only valid ones
		if !t.Before(olderThan) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		// The write lock means no AddReturn holds a ref: closing is safe.
		s.logsMu.Lock()
		if ref := s.logs[jid]; ref != nil {
			s.closeLocked(jid, ref)
		}
		delete(s.fresh, jid)
		s.logsMu.Unlock()
		if err := os.RemoveAll(filepath.Join(s.dir, jid)); err != nil {
			return n, fmt.Errorf("prune job %s: %w", jid, err)
		}
		n++
	}
	if n > 0 {
		if err := syncDir(s.dir); err != nil {
			return n, err
		}
	}
	return n, nil
}

// writeAtomic puts data at dir/name via a temp file renamed over it, so a
// reader never sees a half-written record.
func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error { return syncFile(dir) }

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w: %w", path, errCorrupt, err)
	}
	return nil
}
