package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brine-cm/brine/pkg/job"
	"github.com/brine-cm/brine/pkg/pki"
)

// ErrJIDTaken is Claim's answer when another master already issued the
// same jid (two masters starting a job in the same microsecond).
var ErrJIDTaken = errors.New("jid already taken by another master")

// JobStore is job.Store (the job cache) on a replicated KV bucket, shared
// by every master: `j.<jid>` holds the job, `r.<jid>.<minion>` each
// return. A return is created, never overwritten, so a minion's second
// return for a jid is refused cluster-wide (ErrDuplicateReturn).
type JobStore struct {
	n  *Node
	kv *rkv

	// known holds jids seen to exist, so that each of a job's thousand
	// returns does not read the job back first.
	mu    sync.Mutex
	known map[string]struct{}
}

func (s *JobStore) remember(jid string) {
	s.mu.Lock()
	if len(s.known) >= 4096 {
		s.known = map[string]struct{}{}
	}
	s.known[jid] = struct{}{}
	s.mu.Unlock()
}

func (s *JobStore) exists(ctx context.Context, jid string) error {
	s.mu.Lock()
	_, ok := s.known[jid]
	s.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := s.kv.Get(ctx, jobKey(jid)); err != nil {
		return err
	}
	s.remember(jid)
	return nil
}

var _ job.Store = (*JobStore)(nil)

// OpenJobStore opens the cluster's job bucket. keep > 0 lets JetStream
// age jobs out after that long (keep_jobs); Prune also works.
func OpenJobStore(ctx context.Context, n *Node, keep time.Duration) (*JobStore, error) {
	if keep < 0 {
		keep = 0
	}
	kv, err := n.kv(ctx, jetstream.KeyValueConfig{Bucket: n.bucket("jobs"), Description: "brine job cache", History: 1, TTL: keep})
	if err != nil {
		return nil, err
	}
	return &JobStore{n: n, kv: kv, known: map[string]struct{}{}}, nil
}

func jobKey(jid string) string     { return "j." + jid }
func retKey(jid, id string) string { return "r." + jid + "." + kvKey(id) }

// Claim reserves jid for a job about to start here. Jids are issued per
// process; the bucket makes them unique across masters.
func (s *JobStore) Claim(ctx context.Context, jid string) error {
	t, err := job.ParseJID(jid)
	if err != nil {
		return err
	}
	b, err := json.Marshal(job.Job{JID: jid, StartTime: t})
	if err != nil {
		return err
	}
	_, err = s.kv.Create(ctx, jobKey(jid), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("job %s: %w", jid, ErrJIDTaken)
	}
	if err != nil {
		return fmt.Errorf("job %s: claim: %w", jid, err)
	}
	s.remember(jid)
	return nil
}

// SaveJob implements job.Store.
func (s *JobStore) SaveJob(ctx context.Context, j job.Job) error {
	t, err := job.ParseJID(j.JID)
	if err != nil {
		return fmt.Errorf("save job: %w", err)
	}
	if j.StartTime.IsZero() {
		j.StartTime = t
	}
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	if _, err := s.kv.Put(ctx, jobKey(j.JID), b); err != nil {
		return fmt.Errorf("save job %s: %w", j.JID, err)
	}
	s.remember(j.JID)
	return nil
}

// AddReturn implements job.Store.
func (s *JobStore) AddReturn(ctx context.Context, r job.Return) error {
	if _, err := job.ParseJID(r.JID); err != nil {
		return fmt.Errorf("return from %q: %w", r.MinionID, err)
	}
	if err := pki.ValidateID(r.MinionID); err != nil {
		return fmt.Errorf("return for job %s: %w: %w", r.JID, job.ErrInvalidMinionID, err)
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	if err := s.exists(ctx, r.JID); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, job.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	_, err = s.kv.Create(ctx, retKey(r.JID, r.MinionID), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, job.ErrDuplicateReturn)
	}
	if err != nil {
		return fmt.Errorf("return from %q for job %s: %w", r.MinionID, r.JID, err)
	}
	return nil
}

// Get implements job.Store.
func (s *JobStore) Get(ctx context.Context, jid string) (job.Job, []job.Return, error) {
	if _, err := job.ParseJID(jid); err != nil {
		return job.Job{}, nil, err
	}
	j, err := s.getJob(ctx, jid)
	if err != nil {
		return job.Job{}, nil, err
	}
	rets, err := s.returns(ctx, j)
	if err != nil {
		return job.Job{}, nil, fmt.Errorf("job %s: returns: %w", jid, err)
	}
	sort.Slice(rets, func(a, b int) bool { return rets[a].MinionID < rets[b].MinionID })
	if rets == nil {
		rets = []job.Return{}
	}
	return j, rets, nil
}

// directMax: up to this many targeted minions, returns are read key by
// key. Those reads are answered by any replica, so they work while the
// bucket elects a new leader after a master died — when a reconnected
// minion's return is checked against the cache. Bigger jobs list their
// returns with one watch.
const directMax = 1024

func (s *JobStore) returns(ctx context.Context, j job.Job) ([]job.Return, error) {
	var rets []job.Return
	decode := func(b []byte) {
		var r job.Return
		if json.Unmarshal(b, &r) == nil && r.JID == j.JID {
			rets = append(rets, r)
		}
	}
	if len(j.Minions) <= directMax {
		for _, id := range j.Minions {
			if pki.ValidateID(id) != nil {
				continue
			}
			e, err := s.kv.Get(ctx, retKey(j.JID, id))
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			decode(e.Value())
		}
		return rets, nil
	}
	err := s.n.retry(ctx, func(c context.Context) error {
		rets = rets[:0]
		return s.scan(c, "r."+j.JID+".*", false, func(e jetstream.KeyValueEntry) { decode(e.Value()) })
	})
	return rets, err
}

func (s *JobStore) getJob(ctx context.Context, jid string) (job.Job, error) {
	e, err := s.kv.Get(ctx, jobKey(jid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return job.Job{}, fmt.Errorf("job %s: %w", jid, job.ErrNotFound)
	}
	if err != nil {
		return job.Job{}, fmt.Errorf("job %s: %w", jid, err)
	}
	var j job.Job
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return job.Job{}, fmt.Errorf("job %s: %w", jid, err)
	}
	return j, nil
}

// scan visits the current entries whose keys match filter (one subject
// filter: works on servers without multi-filter consumers).
func (s *JobStore) scan(ctx context.Context, filter string, metaOnly bool, visit func(jetstream.KeyValueEntry)) error {
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if metaOnly {
		opts = append(opts, jetstream.MetaOnly())
	}
	w, err := s.kv.Watch(ctx, filter, opts...)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil {
				return nil
			}
			visit(e)
		}
	}
}

// jids lists the cached jids, newest first.
func (s *JobStore) jids(ctx context.Context) ([]string, error) {
	var out []string
	err := s.n.retry(ctx, func(c context.Context) error {
		out = out[:0]
		return s.scan(c, "j.*", true, s.collectJID(&out))
	})
	if err != nil {
		return nil, fmt.Errorf("job cache: %w", err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, nil
}

func (s *JobStore) collectJID(out *[]string) func(jetstream.KeyValueEntry) {
	return func(e jetstream.KeyValueEntry) {
		if jid, ok := strings.CutPrefix(e.Key(), "j."); ok {
			if _, err := job.ParseJID(jid); err == nil {
				*out = append(*out, jid)
			}
		}
	}
}

// List implements job.Store: newest first, reading only the jobs returned.
func (s *JobStore) List(ctx context.Context, limit int) ([]job.Job, error) {
	jids, err := s.jids(ctx)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(jids) > limit {
		jids = jids[:limit]
	}
	out := make([]job.Job, 0, len(jids))
	for _, jid := range jids {
		j, err := s.getJob(ctx, jid)
		if errors.Is(err, job.ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// Close implements job.Store: every write was acknowledged by the bucket
// already, and the Node owns the connection.
func (s *JobStore) Close() error { return nil }

// Prune implements job.Store.
func (s *JobStore) Prune(ctx context.Context, olderThan time.Time) (int, error) {
	jids, err := s.jids(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, jid := range jids {
		t, _ := job.ParseJID(jid)
		if !t.Before(olderThan) {
			continue
		}
		var keys []string
		if err := s.scan(ctx, "r."+jid+".*", true, func(e jetstream.KeyValueEntry) { keys = append(keys, e.Key()) }); err != nil {
			return n, fmt.Errorf("prune job %s: %w", jid, err)
		}
		s.mu.Lock()
		delete(s.known, jid)
		s.mu.Unlock()
		for _, k := range append(keys, jobKey(jid)) {
			if err := s.kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return n, fmt.Errorf("prune job %s: %w", jid, err)
			}
		}
		n++
	}
	return n, nil
}
