// Package job is the master's job cache: what was published (Job) and what
// each minion answered (Return), kept for keep_jobs like Salt's
// local_cache returner. Store is one of the seams a clustered master
// replaces with JetStream; FileStore is the single-master implementation.
package job

import (
	"context"
	"errors"
	"fmt"
	"github.com/brine-cm/brine/pkg/minionid"
	"sync"
	"time"
)

// Job is one published command. Field names in JSON follow Salt's job
// load (tgt, tgt_type, arg, kwarg) so tooling that reads Salt's cache
// finds the same keys.
type Job struct {
	JID       string         `json:"jid"`
	Fun       string         `json:"fun"`
	Args      []any          `json:"arg"`
	Kwargs    map[string]any `json:"kwarg,omitempty"`
	Target    string         `json:"tgt"`
	TgtType   string         `json:"tgt_type"`
	User      string         `json:"user"`
	Minions   []string       `json:"minions"`
	Offline   []string       `json:"offline,omitempty"`
	StartTime time.Time      `json:"start_time"`
}

// Return is one minion's answer to a job. Return holds JSON-shaped values;
// after a round trip through a Store numbers come back as float64, the
// same convention as event data.
type Return struct {
	JID        string    `json:"jid"`
	MinionID   string    `json:"id"`
	Fun        string    `json:"fun"`
	Return     any       `json:"return"`
	Success    bool      `json:"success"`
	Retcode    int       `json:"retcode"`
	Error      string    `json:"error,omitempty"`
	Time       time.Time `json:"time"`
	DurationMs int64     `json:"duration_ms"`
}

// Store is the job cache. SaveJob must happen before the job is published:
// AddReturn refuses returns for a jid it has never seen, as Salt's
// local_cache does, so a minion cannot plant jobs in the cache.
type Store interface {
	SaveJob(ctx context.Context, j Job) error
	// AddReturn records a minion's return. A second return from the same
	// minion for the same jid is refused with ErrDuplicateReturn (Salt
	// logs it as a possible replay); a retrying sender may treat that as
	// success.
	AddReturn(ctx context.Context, r Return) error
	// Get returns the job and its returns sorted by minion id. A missing
	// job is ErrNotFound, wrapped with the jid.
	Get(ctx context.Context, jid string) (Job, []Return, error)
	// List returns up to limit jobs (all when limit <= 0), newest first.
	List(ctx context.Context, limit int) ([]Job, error)
	// Prune deletes jobs whose jid time is before olderThan and reports
	// how many it removed.
	Prune(ctx context.Context, olderThan time.Time) (int, error)
	// Close makes what was written durable and releases open files; the
	// master calls it at shutdown. FileStore syncs job records in the
	// background, so without it the last second of SaveJobs may be lost
	// to a power cut right after shutdown.
	Close() error
}

var (
	ErrNotFound        = errors.New("job not found")
	ErrDuplicateReturn = errors.New("duplicate return")
	ErrInvalidJID      = errors.New("invalid jid")
	ErrInvalidMinionID = errors.New("invalid minion id")
)

// jidLayout is Salt's jid shape: the time's digits down to microseconds,
// 20 characters, so string order is time order. brine always uses UTC
// (Salt's utc_jid: True) so that order survives DST and timezone changes.
const jidLayout = "20060102150405"

// jidGen hands out strictly increasing jids: if the clock has not moved
// (or moved back) since the last one, the new jid is the last plus one
// microsecond, as Salt's gen_jid bumps a repeated timestamp.
type jidGen struct {
	mu   sync.Mutex
	last int64 // unix microseconds of the last jid issued
}

func (g *jidGen) next(t time.Time) string {
	us := t.UnixMicro()
	g.mu.Lock()
	if us <= g.last {
		us = g.last + 1
	}
	g.last = us
	g.mu.Unlock()
	return formatJID(us)
}

func formatJID(us int64) string {
	t := time.UnixMicro(us).UTC()
	return fmt.Sprintf("%s%06d", t.Format(jidLayout), t.Nanosecond()/1000)
}

var defaultJIDs jidGen

// NewJID returns a jid for a job published at t, in UTC. It is unique and
// increasing within the process, even for calls in the same microsecond.
func NewJID(t time.Time) string { return defaultJIDs.next(t) }

// ParseJID checks that jid is exactly 20 digits forming a real UTC time and
// returns that time. Every path built from a jid goes through here, so a
// jid can never name anything but a directory directly under the cache.
func ParseJID(jid string) (time.Time, error) {
	if len(jid) != 20 {
		return time.Time{}, fmt.Errorf("%w %q: want 20 digits (YYYYMMDDhhmmssffffff), got %d bytes", ErrInvalidJID, jid, len(jid))
	}
	var frac int
	for i := 0; i < len(jid); i++ {
		c := jid[i]
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("%w %q: byte %d is not a digit", ErrInvalidJID, jid, i)
		}
		if i >= 14 {
			frac = frac*10 + int(c-'0')
		}
	}
	t, err := time.ParseInLocation(jidLayout, jid[:14], time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w %q: %w", ErrInvalidJID, jid, err)
	}
	return t.Add(time.Duration(frac) * time.Microsecond), nil
}

// checkMinionID applies the shared minion id rule (pkg/minionid): the id
// is a key of the returns log and, in caches written before it, a file
// name (ret/<id>.json).
func checkMinionID(id string) error {
	if err := minionid.Validate(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMinionID, err)
	}
	return nil
}
