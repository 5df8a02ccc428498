package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
)

// retryCounter is the simulated minions' log handler: it counts their
// failed connection attempts by cause, which is what tells a storm that
// converges from one that feeds itself.
type retryCounter struct {
	mu     sync.Mutex
	causes map[string]int
	errs   map[string]int // whole messages, for minion-retries.txt
}

func newRetryCounter() *retryCounter {
	return &retryCounter{causes: map[string]int{}, errs: map[string]int{}}
}

func (r *retryCounter) Enabled(context.Context, slog.Level) bool { return true }
func (r *retryCounter) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *retryCounter) WithGroup(string) slog.Handler            { return r }

func (r *retryCounter) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "disconnected from master" {
		return nil
	}
	cause, msg := "unknown", ""
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg = a.Value.String()
			cause = retryCause(msg)
			return false
		}
		return true
	})
	r.mu.Lock()
	r.causes[cause]++
	r.errs[msg]++
	r.mu.Unlock()
	return nil
}

// retryCause shortens a connection error to its kind.
func retryCause(err string) string {
	for _, k := range []string{"handshake timed out", "DeadlineExceeded", "connection reset", "EOF", "Unavailable", "context canceled", "key refused", "reconnect now"} {
		if strings.Contains(err, k) {
			return k
		}
	}
	if len(err) > 60 {
		err = err[:60]
	}
	return err
}

// summary is "N retries (cause n, ...)" or "0 retries".
func (r *retryCounter) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0
	type kv struct {
		k string
		n int
	}
	var l []kv
	for k, n := range r.causes {
		total += n
		l = append(l, kv{k, n})
	}
	if total == 0 {
		return "0 reconnects"
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n })
	var parts []string
	for i, e := range l {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s ×%s", e.k, thousands(int64(e.n))))
	}
	return fmt.Sprintf("%s reconnects (%s)", thousands(int64(total)), strings.Join(parts, ", "))
}

// masterHandshakeFailures counts the master's "minion handshake failed"
// log lines, and those among them that timed out.
func masterHandshakeFailures(logPath string) (failed, timedOut int) {
	f, err := os.Open(logPath)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "minion handshake failed") {
			failed++
			if strings.Contains(line, "timed out") {
				timedOut++
			}
		}
	}
	return failed, timedOut
}

// write lists every distinct error with its count, most frequent first.
func (r *retryCounter) write(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	type kv struct {
		k string
		n int
	}
	var l []kv
	for k, n := range r.errs {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n })
	var b strings.Builder
	for _, e := range l {
		fmt.Fprintf(&b, "%d\t%s\n", e.n, e.k)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
