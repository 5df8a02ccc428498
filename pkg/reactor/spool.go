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

// The spool is a directory of one JSON file per accepted, not yet reacted
// event (pending/) and one empty file per delivery id reacted to
// (delivered/, named by a hash so sender-chosen ids never become paths).
// Every step is made durable with fsync of the file and of its directory,
// so the order "accepted -> reacted -> recorded -> removed" survives a
// crash at any point; the only repeat a crash can cause is re-running a
// reaction that was interrupted before it was recorded (at-least-once).
type spool struct {
	pending, delivered string
	// Directory fsyncs are shared by concurrent writers (group commit):
	// one per file made the spool the limit of the webhook at ~300
	// hooks/s (docs/BENCHMARKS.md).
	pendingSync, deliveredSync *groupSync
}

type record struct {
	ID       string          `json:"id"`
	Tag      string          `json:"tag"`
	Delivery string          `json:"delivery,omitempty"`
	Accepted time.Time       `json:"accepted"`
	Data     json.RawMessage `json:"data"`
}

func openSpool(dir string) (*spool, error) {
	s := &spool{pending: filepath.Join(dir, "pending"), delivered: filepath.Join(dir, "delivered")}
	s.pendingSync, s.deliveredSync = &groupSync{dir: s.pending}, &groupSync{dir: s.delivered}
	for _, d := range []string{s.pending, s.delivered} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("reactor spool: %w", err)
		}
	}
	return s, nil
}

// newID sorts by acceptance time, so a replay keeps arrival order.
func newID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%019d-%s", now.UnixNano(), hex.EncodeToString(b[:]))
}

// deliveryKey scopes a delivery id by tag, as the webhook scopes it by
// path, and hashes it into a safe file name.
func deliveryKey(tag, delivery string) string {
	h := sha256.Sum256([]byte(tag + "\x00" + delivery))
	return hex.EncodeToString(h[:])
}

func (s *spool) write(id, tag, delivery string, data map[string]any, now time.Time) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", tag, err)
	}
	b, err := json.Marshal(record{ID: id, Tag: tag, Delivery: delivery, Accepted: now.UTC(), Data: raw})
	if err != nil {
		return fmt.Errorf("encode event %s: %w", tag, err)
	}
	tmp := filepath.Join(s.pending, "."+id+".tmp")
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(s.pending, id+".json")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("reactor spool: %w", err)
	}
	return s.pendingSync.sync()
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

// list returns pending ids oldest first, and the ids of temp files (a
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
	_, err := os.Stat(filepath.Join(s.delivered, key))
	return err == nil
}

// done records the delivery (if any) and then removes the pending file.
func (s *spool) done(id, key string) error {
	if key != "" {
		// An empty file has no data to flush: the directory's fsync makes
		// its creation durable.
		if err := os.WriteFile(filepath.Join(s.delivered, key), nil, 0o600); err != nil {
			return fmt.Errorf("reactor spool: %w", err)
		}
		if err := s.deliveredSync.sync(); err != nil {
			return err
		}
	}
	return s.remove(id, key != "")
}

// remove deletes a pending entry. When its delivery is recorded, the
// removal need not be durable: an entry that reappears after a crash is
// recognised by its recorded delivery and dropped without reacting.
func (s *spool) remove(id string, recorded bool) error {
	if err := os.Remove(filepath.Join(s.pending, id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reactor spool: %w", err)
	}
	if recorded {
		return nil
	}
	return s.pendingSync.sync()
}

// prune forgets delivery ids recorded before cutoff.
func (s *spool) prune(cutoff time.Time) (int, error) {
	ents, err := os.ReadDir(s.delivered)
	if err != nil {
		return 0, fmt.Errorf("reactor spool: %w", err)
	}
	n := 0
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		if os.Remove(filepath.Join(s.delivered, e.Name())) == nil {
			n++
		}
	}
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
