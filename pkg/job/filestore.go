package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// FileStore keeps the job cache as plain files:
//
//	<dir>/<jid>/job.json
//	<dir>/<jid>/ret/<minion>.json
//
// Every file is written atomically (temp, fsync, rename or link, fsync the
// directory), so a crash leaves whole files or none.
type FileStore struct {
	dir string
	// Prune takes the write side so it never deletes a job directory
	// while a return is being linked into it; everything else shares the
	// read side and runs in parallel.
	mu sync.RWMutex
	// SyncReturns fsyncs every return file and its directory. Off by
	// default, like Salt's local job cache: with a fleet answering at once
	// two fsyncs per return made the disk the pace of every job (1,000
	// minions: 340-980 ms per ping round with them, 74 ms without, see
	// docs/BENCHMARKS.md). Returns are still written atomically; a crash
	// may lose the last seconds of returns, never tear one. Job records
	// are always synced.
	SyncReturns bool
}

var _ Store = (*FileStore)(nil)

const (
	jobFile = "job.json"
	retDir  = "ret"
)

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
	return &FileStore{dir: dir}, nil
}

// SaveJob records j, replacing an earlier record of the same jid (the
// master may learn the minion list only after it first saves the job).
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
	if err := os.MkdirAll(filepath.Join(jobDir, retDir), 0o700); err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	if err := writeAtomic(jobDir, jobFile, data, true, true); err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	// The new jid directory's own entry must be durable too.
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	return nil
}

// AddReturn records r under its job. The file is linked into place rather
// than renamed so that an existing return is never overwritten: a replayed
// or forged second answer cannot replace the first.
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
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	dir := filepath.Join(s.dir, r.JID, retDir)
	err = writeAtomic(dir, r.MinionID+".json", data, false, s.SyncReturns)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, ErrNotFound)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, ErrDuplicateReturn)
	case err != nil:
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	return nil
}

// Get loads a job and all its returns, sorted by minion id.
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
	dir := filepath.Join(s.dir, jid, retDir)
	names, err := readNames(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Job{}, nil, fmt.Errorf("job %s: %w", jid, err)
	}
	sort.Strings(names)
	rets := make([]Return, 0, len(names))
	for _, name := range names {
		id, ok := strings.CutSuffix(name, ".json")
		// Temp files start with '.', which checkMinionID refuses.
		if !ok || checkMinionID(id) != nil {
			continue
		}
		var r Return
		if err := readJSON(filepath.Join(dir, name), &r); err != nil {
			return Job{}, nil, fmt.Errorf("job %s: %w", jid, err)
		}
		rets = append(rets, r)
	}
	return j, rets, nil
}

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
// cheap however many jobs keep_jobs retains.
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
			// A directory whose job.json never landed (crash mid-save).
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// Prune removes every job whose jid time is before olderThan. It goes by
// the jid rather than file times, so copying or restoring the cache does
// not reset a job's age.
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

// writeAtomic puts data at dir/name via a temp file. With replace it
// renames over any existing file; without, it hard-links, which fails with
// fs.ErrExist if name is taken, atomically and without a lock.
func writeAtomic(dir, name string, data []byte, replace, sync bool) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		// After a link the temp name is only a second name for the file.
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	dst := filepath.Join(dir, name)
	if replace {
		err = os.Rename(tmp, dst)
		renamed = err == nil
	} else {
		err = os.Link(tmp, dst)
	}
	if err != nil {
		return err
	}
	if !sync {
		return nil
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

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
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
