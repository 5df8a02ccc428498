package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// returnsFile is a job's returns log: one JSON Return per line, appended
// in arrival order. One file per job instead of one per return keeps a
// fan-out's thousand answers to a handful of write syscalls.
const returnsFile = "returns.jsonl"

// logKey is what rebuilding the duplicate set needs from a line; decoding
// only these two fields skips building every return's value.
type logKey struct {
	JID      string `json:"jid"`
	MinionID string `json:"id"`
}

// scanReturns walks a returns log. Only complete lines count: valid is the
// length of data up to and including its last '\n', and anything after it
// is an append a crash cut short, ignored here and truncated before the
// next append. visit sees each minion's first good line, decoded fully
// when full is set (else only JID and MinionID are filled); later lines
// from the same minion, lines for another jid, bad minion ids and bad
// JSON are skipped and reported in problems, by file and line.
func scanReturns(path string, data []byte, jid string, full bool, visit func(Return)) (valid int, problems []error) {
	valid = bytes.LastIndexByte(data, '\n') + 1
	seen := map[string]struct{}{}
	rest := data[:valid]
	for line := 1; len(rest) > 0; line++ {
		i := bytes.IndexByte(rest, '\n')
		text := rest[:i]
		rest = rest[i+1:]
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		var r Return
		var err error
		if full {
			err = json.Unmarshal(text, &r)
		} else {
			var k logKey
			err = json.Unmarshal(text, &k)
			r.JID, r.MinionID = k.JID, k.MinionID
		}
		switch {
		case err != nil:
		case r.JID != jid:
			err = fmt.Errorf("return for job %q in the log of job %s", r.JID, jid)
		default:
			err = checkMinionID(r.MinionID)
		}
		if err == nil {
			if _, dup := seen[r.MinionID]; dup {
				err = fmt.Errorf("second return from %q: %w (the first is kept)", r.MinionID, ErrDuplicateReturn)
			}
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("%s:%d: %w", path, line, err))
			continue
		}
		seen[r.MinionID] = struct{}{}
		visit(r)
	}
	return valid, problems
}

// batch is one group commit: the lines of every AddReturn that arrived
// while the previous write was in flight, written with one syscall.
type batch struct {
	buf  []byte
	ids  []string
	lead chan struct{} // one waiter is told to write this batch (buffered 1)
	done chan struct{} // closed once written; err is then set
	err  error
}

// jobLog is an active job's open returns log and the set of minions that
// have answered it. The set is the duplicate check: it is rebuilt from
// disk when the job is first touched (after a restart or an eviction), so
// the first return stays the only one however the master restarts.
type jobLog struct {
	jid  string
	path string
	f    *os.File
	// created: this open made the file, whose name is not on disk until
	// the job directory is synced.
	created bool

	mu       sync.Mutex
	seen     map[string]struct{}
	cur      *batch // collecting lines; nil until the first one
	flushing bool   // a leader is writing; others wait for their batch
	size     int64  // end of the last complete line on disk
}

// openLog activates jid's returns log: opens (creating) it for appending,
// rebuilds the duplicate set from it and from returns an older layout
// kept as ret/<minion>.json, and cuts off a torn last line. A jid whose
// directory does not exist is ErrNotFound: O_CREATE cannot make the
// directory, so a late return never resurrects a pruned job. fresh says
// this store just created the job directory: then the log is created
// exclusively and nothing needs reading (if it exists after all, it is
// loaded as usual).
func openLog(dir, jid string, fresh bool) (*jobLog, error) {
	jobDir := filepath.Join(dir, jid)
	path := filepath.Join(jobDir, returnsFile)
	if fresh {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return &jobLog{jid: jid, path: path, f: f, created: true, seen: map[string]struct{}{}}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, notFound(err)
		}
	}
	created := false
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		created = err == nil
	}
	if err != nil {
		return nil, notFound(err)
	}
	l := &jobLog{jid: jid, path: path, f: f, created: created, seen: map[string]struct{}{}}
	if err := l.load(jobDir); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// notFound turns a missing job directory into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

func (l *jobLog) load(jobDir string) error {
	data, err := io.ReadAll(l.f)
	if err != nil {
		return fmt.Errorf("%s: %w", l.path, err)
	}
	valid, problems := scanReturns(l.path, data, l.jid, false, func(r Return) { l.seen[r.MinionID] = struct{}{} })
	for _, p := range problems {
		logger().Warn("skipping a line of a returns log", "err", p)
	}
	if valid < len(data) {
		logger().Warn("cutting off a torn last line (crash mid-append)", "file", l.path, "bytes", len(data)-valid)
		if err := l.f.Truncate(int64(valid)); err != nil {
			return fmt.Errorf("%s: cut torn line: %w", l.path, err)
		}
	}
	l.size = int64(valid)
	legacy, err := legacyIDs(jobDir)
	if err != nil {
		return err
	}
	for _, id := range legacy {
		l.seen[id] = struct{}{}
	}
	return nil
}

// legacyIDs lists the minions with a return in the file-per-return layout
// (ret/<minion>.json) that caches written before the returns log use.
func legacyIDs(jobDir string) ([]string, error) {
	names, err := readNames(filepath.Join(jobDir, legacyRetDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", jobDir, err)
	}
	ids := names[:0]
	for _, name := range names {
		// Temp files start with '.', which checkMinionID refuses.
		if id, ok := strings.CutSuffix(name, ".json"); ok && checkMinionID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// append records line for minion id, refusing a second return from the
// same minion. Concurrent callers are group-committed: a caller that
// finds no write in flight writes its batch; lines arriving meanwhile
// collect in the next batch, and when the write ends one of their
// callers is handed that batch to write, so no caller waits for more
// than two writes. The minion is marked seen before its write, so a
// racing duplicate is refused at once; if the write fails the mark is
// lifted and the sender's retry can succeed.
func (l *jobLog) append(id string, line []byte, sync bool) error {
	l.mu.Lock()
	if _, dup := l.seen[id]; dup {
		l.mu.Unlock()
		return ErrDuplicateReturn
	}
	l.seen[id] = struct{}{}
	if l.cur == nil {
		l.cur = &batch{lead: make(chan struct{}, 1), done: make(chan struct{})}
	}
	b := l.cur
	b.buf = append(b.buf, line...)
	b.ids = append(b.ids, id)
	if l.flushing {
		l.mu.Unlock()
		select {
		case <-b.done:
			return b.err
		case <-b.lead:
		}
		l.mu.Lock()
	}
	// This caller writes b. Until it is done, new lines go to a new batch.
	l.flushing = true
	l.cur = nil
	l.mu.Unlock()
	b.err = l.write(b.buf, sync)
	l.mu.Lock()
	if b.err != nil {
		for _, id := range b.ids {
			delete(l.seen, id)
		}
	} else {
		l.size += int64(len(b.buf))
	}
	close(b.done)
	if l.cur != nil {
		l.cur.lead <- struct{}{} // flushing stays set: the handoff is the next writer
	} else {
		l.flushing = false
	}
	l.mu.Unlock()
	return b.err
}

// write runs only in the leader, so l.size is stable while it runs.
func (l *jobLog) write(buf []byte, sync bool) error {
	_, err := l.f.Write(buf)
	if err == nil && sync {
		err = l.f.Sync()
	}
	if err != nil {
		// A partial append (disk full) would glue the next line onto a
		// fragment: cut back to the last whole line.
		if terr := l.f.Truncate(l.size); terr != nil {
			return fmt.Errorf("%s: %w (and cutting the partial line: %w)", l.path, err, terr)
		}
		return fmt.Errorf("%s: %w", l.path, err)
	}
	return nil
}

func (l *jobLog) close() error { return l.f.Close() }
