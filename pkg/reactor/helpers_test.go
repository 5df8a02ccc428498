package reactor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/event"
)

// call is one PublishAsync the fake master received.
type call struct {
	Tgt     string         `json:"tgt"`
	TgtType string         `json:"tgt_type"`
	Fun     string         `json:"fun"`
	Args    []any          `json:"args"`
	Kwargs  map[string]any `json:"kwargs"`
	User    string         `json:"user"`
}

// fakeLocal counts published jobs. When block is set, PublishAsync waits
// for it (or for ctx) before returning, to hold a reaction mid-flight.
type fakeLocal struct {
	mu      sync.Mutex
	calls   []call
	n       atomic.Int64
	block   chan struct{}
	entered chan struct{}
	err     error
	notify  chan call
	// onCall, when set, sees each call as it is made.
	onCall func(call)
}

func (f *fakeLocal) PublishAsync(ctx context.Context, tgt, tgtType, fun string, args []any, kwargs map[string]any, user string) (string, error) {
	if f.entered != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if f.err != nil {
		return "", f.err
	}
	c := call{tgt, tgtType, fun, args, kwargs, user}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.onCall != nil {
		f.onCall(c)
	}
	n := f.n.Add(1)
	if f.notify != nil {
		f.notify <- c
	}
	return fmt.Sprintf("2026010112000000%04d", n), nil
}

func (f *fakeLocal) all() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

const ghSecret = "It's a Secret to Everybody"

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// repoFile is a file of the repository, for tests of the shipped SLS.
func repoFile(t testing.TB, rel string) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", rel)
}

// runReactor starts r.Run and stops it at cleanup.
func runReactor(t testing.TB, r *Reactor) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(stop) })
	return func() { once.Do(stop) }
}

// waitFor polls cond until true or the deadline.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// collect gathers bus events of a glob.
type collector struct {
	mu  sync.Mutex
	evs []event.Event
}

func collect(t testing.TB, bus event.Bus, glob string) *collector {
	c := &collector{}
	sub := bus.Subscribe(glob, 100000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.C {
			c.mu.Lock()
			c.evs = append(c.evs, ev)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close(); <-done })
	return c
}

func (c *collector) tags() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.evs {
		out = append(out, e.Tag)
	}
	return out
}

func (c *collector) withTag(tag string) []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event.Event
	for _, e := range c.evs {
		if e.Tag == tag {
			out = append(out, e)
		}
	}
	return out
}

// spooledOnDisk counts the events a spool directory holds not marked
// reacted to, reading the journal and legacy files as a restart would.
func spooledOnDisk(t testing.TB, spoolDir string) int {
	t.Helper()
	dir := filepath.Join(spoolDir, "journal")
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{}
	for _, seq := range segs {
		b, err := os.ReadFile(filepath.Join(dir, segmentName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		payloads, _ := readFrames(b)
		for _, p := range payloads {
			var rec record
			if err := json.Unmarshal(p, &rec); err != nil {
				t.Fatal(err)
			}
			open[rec.ID] = rec.Op == "accept"
		}
	}
	n := 0
	for _, o := range open {
		if o {
			n++
		}
	}
	legacy, _ := filepath.Glob(filepath.Join(spoolDir, "pending", "*.json"))
	return n + len(legacy)
}
