package reactor

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/brine-cm/brine/pkg/webhook"
)

// The spool holds accepted, not yet reacted events and the delivery ids
// reacted to. Events and "reacted to" marks go to the journal (see
// journal.go), delivery ids to one file per day under delivered/. The
// order "accepted -> reacted -> recorded" survives a crash at any point;
// the only repeat a crash can cause is re-running a reaction that was
// interrupted before it was recorded (at-least-once).
//
// Spools written by earlier versions (one JSON file per event in
// pending/, one empty file per delivery id in delivered/) are still read:
// their events are replayed and their delivery ids refused.
type spool struct {
	pending, delivered, journalDir string
	// pendingSync group-commits the legacy pending/ directory's fsyncs.
	pendingSync *groupSync
	j           *journal

	mu    sync.Mutex
	seqOf map[string]uint64    // journal events not yet reacted to -> segment
	keys  map[string]time.Time // delivery keys reacted to -> when (at latest)

	// Found at open, for Run to replay and report.
	replayed []entry
	damaged  []error
}

// entry is an event read back from the journal.
type entry struct {
	rec  record
	data map[string]any
}

type record struct {
	Op       string          `json:"op,omitempty"` // journal: accept, done
	ID       string          `json:"id"`
	Tag      string          `json:"tag,omitempty"`
	Delivery string          `json:"delivery,omitempty"`
	Accepted time.Time       `json:"accepted,omitzero"`
	Data     json.RawMessage `json:"data,omitempty"`
}

func openSpool(dir string) (*spool, error) {
	s := &spool{pending: filepath.Join(dir, "pending"), delivered: filepath.Join(dir, "delivered"),
		journalDir: filepath.Join(dir, "journal"), seqOf: map[string]uint64{}, keys: map[string]time.Time{}}
	s.pendingSync = &groupSync{dir: s.pending}
	for _, d := range []string{s.pending, s.delivered, s.journalDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("reactor spool: %w", err)
		}
	}
	if err := s.loadDelivered(); err != nil {
		return nil, err
	}
	if err := s.loadJournal(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadDelivered reads the delivery ids reacted to: day files, and the
// empty per-id files of earlier versions (dated by their mtime).
func (s *spool) loadDelivered() error {
	ents, err := os.ReadDir(s.delivered)
	if err != nil {
		return fmt.Errorf("reactor spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if day, ok := strings.CutSuffix(name, ".log"); ok {
			t, err := time.Parse(dayLayout, day)
			if err != nil {
				continue
			}
			b, err := readAll(filepath.Join(s.delivered, name))
			if err != nil {
				return fmt.Errorf("reactor spool: %w", err)
			}
			// A line cut short by a crash was never acknowledged.
			for _, k := range strings.Split(string(b), "\n") {
				if isKey(k) {
					s.keys[k] = t.Add(24 * time.Hour)
				}
			}
			continue
		}
		if isKey(name) {
			if info, err := e.Info(); err == nil {
				s.keys[name] = info.ModTime()
			}
		}
	}
	return nil
}

func isKey(k string) bool {
	if len(k) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(k)
	return err == nil
}

// loadJournal reads every segment, keeps the events not marked reacted
// to, rewrites them into a fresh segment and removes the old segments
// (damaged ones are renamed *.bad and kept for a human).
func (s *spool) loadJournal() error {
	segs, err := listSegments(s.journalDir)
	if err != nil {
		return err
	}
	pend := map[string][]byte{}
	var order []string
	finished := map[string]bool{}
	damaged := map[uint64]bool{}
	for _, seq := range segs {
		p := filepath.Join(s.journalDir, segmentName(seq))
		b, err := readAll(p)
		if err != nil {
			return fmt.Errorf("reactor spool: %w", err)
		}
		payloads, err := readFrames(b)
		if errors.Is(err, errDamaged) || err != nil && seq != segs[len(segs)-1] {
			// The last segment's torn tail is a write a crash cut short,
			// never acknowledged; anything else is a write that failed or
			// a disk that lost data.
			damaged[seq] = true
			s.damaged = append(s.damaged, fmt.Errorf("reactor spool %s: %w after %d records; the rest is ignored", p, err, len(payloads)))
		}
		for i, pl := range payloads {
			var rec record
			if err := json.Unmarshal(pl, &rec); err != nil || rec.ID == "" {
				damaged[seq] = true
				s.damaged = append(s.damaged, fmt.Errorf("reactor spool %s: record %d unreadable: %v", p, i+1, err))
				continue
			}
			switch rec.Op {
			case "accept":
				if !finished[rec.ID] && pend[rec.ID] == nil {
					pend[rec.ID] = pl
					order = append(order, rec.ID)
				}
			case "done":
				finished[rec.ID] = true
				delete(pend, rec.ID)
			}
		}
	}
	last := uint64(0)
	if len(segs) > 0 {
		last = segs[len(segs)-1]
	}
	s.j = &journal{dir: s.journalDir, deliveredDir: s.delivered, limit: segmentLimit, seq: last + 1,
		segments: []uint64{last + 1}, open: map[uint64]int{}}

	sort.Strings(order)
	var buf []byte
	for _, id := range order {
		pl := pend[id]
		if pl == nil {
			continue
		}
		var rec record
		_ = json.Unmarshal(pl, &rec)
		v, err := webhook.DecodeJSON(rec.Data)
		data, ok := v.(map[string]any)
		if err != nil || !ok || rec.Tag == "" {
			s.damaged = append(s.damaged, fmt.Errorf("reactor spool: event %s (tag %q): data unreadable, dropped: %v", id, rec.Tag, err))
			continue
		}
		buf = frame(buf, pl)
		s.replayed = append(s.replayed, entry{rec: rec, data: data})
		s.seqOf[id] = last + 1
	}
	if len(buf) > 0 {
		c, _ := s.j.append(buf, "", 0, false)
		<-c.done
		if c.err != nil {
			return c.err
		}
		s.j.mu.Lock()
		s.j.open[last+1] = len(s.replayed)
		s.j.mu.Unlock()
	}
	if len(segs) == 0 {
		return nil
	}
	for _, seq := range segs {
		p := filepath.Join(s.journalDir, segmentName(seq))
		if damaged[seq] {
			os.Rename(p, p+".bad")
		} else {
			os.Remove(p)
		}
	}
	return syncDir(s.journalDir)
}

// newID sorts by acceptance time, so a replay keeps arrival order.
func newID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%019d-%s", now.UnixNano(), hex.EncodeToString(b[:]))
}

// deliveryKey scopes a delivery id by tag, as the webhook scopes it by
// path, and hashes it (sender-chosen ids never reach the disk as such).
func deliveryKey(tag, delivery string) string {
	h := sha256.Sum256([]byte(tag + "\x00" + delivery))
	return hex.EncodeToString(h[:])
}

// write makes an accepted event durable.
func (s *spool) write(id, tag, delivery string, data map[string]any, now time.Time) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", tag, err)
	}
	b, err := json.Marshal(record{Op: "accept", ID: id, Tag: tag, Delivery: delivery, Accepted: now.UTC(), Data: raw})
	if err != nil {
		return fmt.Errorf("encode event %s: %w", tag, err)
	}
	if int64(len(b)) > maxFrame {
		return fmt.Errorf("event %s: %d bytes encoded, more than a spool record holds", tag, len(b))
	}
	c, seq := s.j.append(frame(nil, b), "", 0, true)
	s.mu.Lock()
	s.seqOf[id] = seq
	s.mu.Unlock()
	<-c.done
	if c.err != nil {
		s.j.forget(seq)
		s.mu.Lock()
		delete(s.seqOf, id)
		s.mu.Unlock()
		return c.err
	}
	return nil
}

// mark is a "reacted to" record on its way to the disk.
type mark struct {
	c       *commit
	id, key string
	legacy  bool // an earlier version's event file, removed once recorded
}

// markDone appends the record that event id was reacted to (and its
// delivery key, if any) without waiting for it: records reach the disk in
// the order they were made, so the reactor makes them in per-tag order
// before releasing the tag's next event and waits for them after.
func (s *spool) markDone(id, key string) mark {
	s.mu.Lock()
	seq := s.seqOf[id]
	delete(s.seqOf, id)
	if key != "" {
		s.keys[key] = time.Now()
	}
	s.mu.Unlock()
	var rec []byte
	if seq != 0 {
		b, _ := json.Marshal(record{Op: "done", ID: id})
		rec = frame(nil, b)
	}
	c, _ := s.j.append(rec, key, seq, false)
	return mark{c: c, id: id, key: key, legacy: seq == 0}
}

// finish waits until m is durable.
func (s *spool) finish(m mark) error {
	<-m.c.done
	if m.c.err != nil {
		return m.c.err
	}
	if m.legacy {
		return s.remove(m.id, m.key != "")
	}
	return nil
}

// done records event id as reacted to and waits until that is durable.
func (s *spool) done(id, key string) error {
	return s.finish(s.markDone(id, key))
}

func (s *spool) read(id string) (record, map[string]any, error) {
	var rec record
	p := filepath.Join(s.pending, id+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		return rec, nil, fmt.Errorf("reactor spool: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, nil, fmt.Errorf("reactor spool %s: %w", p, err)
	}
	v, err := webhook.DecodeJSON(rec.Data)
	if err != nil {
		return rec, nil, fmt.Errorf("reactor spool %s: data: %w", p, err)
	}
	data, ok := v.(map[string]any)
	if !ok {
		return rec, nil, fmt.Errorf("reactor spool %s: data is not a mapping", p)
	}
	if rec.ID != id || rec.Tag == "" {
		return rec, nil, fmt.Errorf("reactor spool %s: id or tag missing", p)
	}
	return rec, data, nil
}

// list returns an earlier version's pending ids oldest first, and the ids of temp files (a
// write in progress, or one a crash interrupted before it was ever
// acknowledged to a sender).
func (s *spool) list() (ids, temps []string, err error) {
	ents, err := os.ReadDir(s.pending)
	if err != nil {
		return nil, nil, fmt.Errorf("reactor spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp"):
			temps = append(temps, strings.TrimSuffix(name[1:], ".tmp"))
		case strings.HasSuffix(name, ".json"):
			ids = append(ids, strings.TrimSuffix(name, ".json"))
		}
	}
	sort.Strings(ids)
	return ids, temps, nil
}

func (s *spool) removeTemp(id string) {
	os.Remove(filepath.Join(s.pending, "."+id+".tmp"))
}

// quarantine renames an unreadable spool file so it is kept for a human
// but never retried.
func (s *spool) quarantine(id string) error {
	p := filepath.Join(s.pending, id+".json")
	if err := os.Rename(p, p+".bad"); err != nil {
		return fmt.Errorf("reactor spool: %w", err)
	}
	return s.pendingSync.sync()
}

func (s *spool) isDelivered(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[key]
	return ok
}

// remove deletes an event file of an earlier version's spool. When its
// delivery is recorded, the removal need not be durable: an entry that
// reappears after a crash is recognised by its recorded delivery and
// dropped without reacting.
func (s *spool) remove(id string, recorded bool) error {
	if err := os.Remove(filepath.Join(s.pending, id+".json")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("reactor spool: %w", err)
	}
	if recorded {
		return nil
	}
	return s.pendingSync.sync()
}

// prune forgets delivery ids recorded before cutoff: whole day files whose
// day ended before it, and earlier versions' per-id files by mtime.
func (s *spool) prune(cutoff time.Time) (int, error) {
	ents, err := os.ReadDir(s.delivered)
	if err != nil {
		return 0, fmt.Errorf("reactor spool: %w", err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if day, ok := strings.CutSuffix(name, ".log"); ok {
			t, err := time.Parse(dayLayout, day)
			if err != nil || !t.Add(24*time.Hour).Before(cutoff) {
				continue
			}
		} else {
			info, err := e.Info()
			if err != nil || !info.ModTime().Before(cutoff) {
				continue
			}
		}
		if os.Remove(filepath.Join(s.delivered, name)) == nil {
			n++
		}
	}
	s.mu.Lock()
	for k, t := range s.keys {
		if t.Before(cutoff) {
			delete(s.keys, k)
		}
	}
	s.mu.Unlock()
	return n, nil
}

func writeFileSync(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("reactor spool: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("reactor spool: write %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("reactor spool: fsync %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("reactor spool: close %s: %w", p, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("reactor spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("reactor spool: fsync %s: %w", dir, err)
	}
	return nil
}

// groupSync is a group commit of one directory's fsync: a caller whose
// change (create, rename, remove) is done waits for an fsync that started
// after it, and every caller arriving while one runs shares the next one.
type groupSync struct {
	dir     string
	mu      sync.Mutex
	running bool
	next    *syncBatch
}

type syncBatch struct {
	done chan struct{}
	err  error
}

func (g *groupSync) sync() error {
	g.mu.Lock()
	b := g.next
	if b == nil {
		b = &syncBatch{done: make(chan struct{})}
		g.next = b
	}
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	<-b.done
	return b.err
}

func (g *groupSync) run() {
	for {
		g.mu.Lock()
		b := g.next
		g.next = nil
		if b == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		b.err = syncDir(g.dir)
		close(b.done)
	}
}
