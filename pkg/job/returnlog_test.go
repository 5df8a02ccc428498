package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func reopen(t *testing.T, dir string) *FileStore {
	t.Helper()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func minionsOf(rets []Return) []string {
	var ids []string
	for _, r := range rets {
		ids = append(ids, r.MinionID)
	}
	return ids
}

// TestDuplicateUnderConcurrency: many goroutines send the same minion's
// return at once, mixed with other minions' returns that share their
// group commits. Exactly one wins and the log holds it once.
func TestDuplicateUnderConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sync       bool
		racers     int
		bystanders int
	}{
		{"nosync", false, 64, 64},
		{"sync", true, 32, 32},
		{"racers only", false, 128, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := openStore(t)
			s.SyncReturns = tc.sync
			ctx := t.Context()
			jid := jidAt(t0)
			mustSave(t, s, sampleJob(jid))
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make(chan error, tc.racers)
			var winner sync.Map
			for i := range tc.racers {
				wg.Go(func() {
					<-start
					r := sampleReturn(jid, "dup")
					r.Return = fmt.Sprintf("attempt %d", i)
					err := s.AddReturn(ctx, r)
					if err == nil {
						winner.Store("value", r.Return)
					}
					results <- err
				})
			}
			for i := range tc.bystanders {
				wg.Go(func() {
					<-start
					if err := s.AddReturn(ctx, sampleReturn(jid, fmt.Sprintf("m%03d", i))); err != nil {
						t.Error(err)
					}
				})
			}
			close(start)
			wg.Wait()
			close(results)
			wins := 0
			for err := range results {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, ErrDuplicateReturn) || !strings.Contains(err.Error(), `"dup"`):
					t.Errorf("racer: %v, want ErrDuplicateReturn naming the minion", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d racers accepted, want 1", wins)
			}
			_, rets, err := s.Get(ctx, jid)
			if err != nil {
				t.Fatal(err)
			}
			if len(rets) != tc.bystanders+1 {
				t.Errorf("%d returns stored, want %d", len(rets), tc.bystanders+1)
			}
			i, _ := slices.BinarySearchFunc(rets, "dup", func(r Return, id string) int { return strings.Compare(r.MinionID, id) })
			if want, _ := winner.Load("value"); rets[i].MinionID != "dup" || rets[i].Return != want {
				t.Errorf("stored %+v, want the accepted return %v", rets[i], want)
			}
			data, _ := os.ReadFile(filepath.Join(dir, jid, returnsFile))
			if n := bytes.Count(data, []byte(`"id":"dup"`)); n != 1 {
				t.Errorf("log holds %d lines from dup, want 1", n)
			}
			if n := bytes.Count(data, []byte("\n")); n != tc.bystanders+1 {
				t.Errorf("log has %d lines, want %d", n, tc.bystanders+1)
			}
		})
	}
}

// TestTornLineRecovery: a crash mid-append leaves a partial last line.
// After a restart it is not a return, the next append does not merge
// with it, and its minion may still answer.
func TestTornLineRecovery(t *testing.T) {
	for _, tc := range []struct {
		name string
		torn string
	}{
		{"cut inside the line", `{"jid":"20240305070809123456","id":"web3","fun":"state.apply","ret`},
		{"whole JSON but no newline", jsonOf(sampleReturn(jidAt(t0), "web3"))},
		{"garbage", "\x00\x00\x00\xff"},
		{"a lone brace", "{"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := openStore(t)
			ctx := t.Context()
			jid := jidAt(t0)
			mustSave(t, s, sampleJob(jid))
			mustReturn(t, s, sampleReturn(jid, "web1"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(dir, jid, returnsFile)
			f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tc.torn)
			f.Close()

			s2 := reopen(t, dir)
			_, rets, err := s2.Get(ctx, jid)
			if err != nil {
				t.Fatal(err)
			}
			if got := minionsOf(rets); !slices.Equal(got, []string{"web1"}) {
				t.Fatalf("before the next append Get = %v, want [web1]", got)
			}
			mustReturn(t, s2, sampleReturn(jid, "web2"))
			// web3's line never completed, so web3 has not returned.
			mustReturn(t, s2, sampleReturn(jid, "web3"))
			_, rets, err = s2.Get(ctx, jid)
			if err != nil {
				t.Fatal(err)
			}
			want := []Return{sampleReturn(jid, "web1"), sampleReturn(jid, "web2"), sampleReturn(jid, "web3")}
			if !reflect.DeepEqual(rets, want) {
				t.Errorf("after recovery Get = %s", jsonOf(rets))
			}
			data, _ := os.ReadFile(logPath)
			// Exactly three lines, each one whole return: the torn bytes
			// were cut, not glued to web2's line.
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if len(lines) != 3 {
				t.Fatalf("log has %d lines, want 3:\n%s", len(lines), data)
			}
			for i, line := range lines {
				var r Return
				if err := jsonUnmarshal(line, &r); err != nil || r.MinionID != want[i].MinionID {
					t.Errorf("line %d = %q (%v), want %s's return", i+1, line, err, want[i].MinionID)
				}
			}
		})
	}
}

// TestLegacyLayout: a cache written by the file-per-return layout keeps
// its history after an upgrade and its returns still refuse duplicates.
func TestLegacyLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs")
	jid := jidAt(t0)
	retDir := filepath.Join(dir, jid, "ret")
	if err := os.MkdirAll(retDir, 0o700); err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "job.json.golden"))
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile(filepath.Join("testdata", "legacy-ret-web1.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		filepath.Join(dir, jid, "job.json"): golden,
		filepath.Join(retDir, "web1.json"):  legacy,
		filepath.Join(retDir, ".tmp-123"):   []byte("{half"), // the old writer's temp file
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := reopen(t, dir)
	ctx := t.Context()
	j, rets, err := s.Get(ctx, jid)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(j, sampleJob(jid)) || !reflect.DeepEqual(rets, []Return{sampleReturn(jid, "web1")}) {
		t.Fatalf("legacy Get = %s %s", jsonOf(j), jsonOf(rets))
	}
	tests := []struct {
		minion string
		want   error
	}{
		{"web1", ErrDuplicateReturn}, // answered under the old layout
		{"web0", nil},
		{"web2", nil},
		{"web2", ErrDuplicateReturn},
	}
	for _, tc := range tests {
		r := sampleReturn(jid, tc.minion)
		r.Return = "new layout"
		if err := s.AddReturn(ctx, r); !errors.Is(err, tc.want) {
			t.Errorf("AddReturn(%s) = %v, want %v", tc.minion, err, tc.want)
		}
	}
	_, rets, err = s.Get(ctx, jid)
	if err != nil {
		t.Fatal(err)
	}
	if got := minionsOf(rets); !slices.Equal(got, []string{"web0", "web1", "web2"}) || rets[1].Return == "new layout" {
		t.Errorf("mixed layouts Get = %s", jsonOf(rets))
	}
	if n, err := s.Prune(ctx, t0.Add(time.Second)); n != 1 || err != nil {
		t.Errorf("prune = %d, %v", n, err)
	}
}

// openFDsUnder counts this process's open descriptors on files below dir.
func openFDsUnder(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// TestOpenLogsBounded: returns logs are closed when more than
// MaxOpenLogs jobs are active, and Prune closes the logs it deletes.
func TestOpenLogsBounded(t *testing.T) {
	for _, tc := range []struct {
		max, jobs, pruned int
	}{
		{max: 4, jobs: 10, pruned: 10},
		{max: 8, jobs: 5, pruned: 3},
	} {
		t.Run(fmt.Sprintf("max%d-jobs%d", tc.max, tc.jobs), func(t *testing.T) {
			s, dir := openStore(t)
			s.MaxOpenLogs = tc.max
			ctx := t.Context()
			var jids []string
			for i := range tc.jobs {
				jid := jidAt(t0.Add(time.Duration(i) * time.Minute))
				jids = append(jids, jid)
				mustSave(t, s, sampleJob(jid))
				mustReturn(t, s, sampleReturn(jid, "web1"))
			}
			open := min(tc.max, tc.jobs)
			if got := s.OpenLogs(); got != open {
				t.Errorf("%d logs open, want %d", got, open)
			}
			if got := openFDsUnder(t, dir); got != open {
				t.Errorf("%d descriptors under the cache, want %d", got, open)
			}
			// The first job's log was closed: coming back to it rebuilds
			// the duplicate set from disk.
			if err := s.AddReturn(ctx, sampleReturn(jids[0], "web1")); !errors.Is(err, ErrDuplicateReturn) {
				t.Errorf("duplicate after its log was closed: %v", err)
			}
			n, err := s.Prune(ctx, t0.Add(time.Duration(tc.pruned)*time.Minute-time.Second))
			if err != nil || n != tc.pruned {
				t.Fatalf("prune = %d, %v", n, err)
			}
			left := tc.jobs - tc.pruned
			if got := s.OpenLogs(); got > left {
				t.Errorf("%d logs open after pruning to %d jobs", got, left)
			}
			if got := openFDsUnder(t, dir); got > left {
				t.Errorf("%d descriptors under the cache after pruning to %d jobs", got, left)
			}
			if err := s.AddReturn(ctx, sampleReturn(jids[0], "web9")); !errors.Is(err, ErrNotFound) {
				t.Errorf("return to a pruned job: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := openFDsUnder(t, dir); got != 0 {
				t.Errorf("%d descriptors under the cache after Close", got)
			}
		})
	}
}

// TestIdleLogsClosed: with no further traffic, a finished job's log is
// closed (and its duplicate set freed) once idle; a straggler still gets
// refused or stored correctly afterwards.
func TestIdleLogsClosed(t *testing.T) {
	s, dir := openStore(t)
	s.idleAfter = 20 * time.Millisecond
	ctx := t.Context()
	jid := jidAt(t0)
	mustSave(t, s, sampleJob(jid))
	mustReturn(t, s, sampleReturn(jid, "web1"))
	if got := openFDsUnder(t, dir); got != 1 {
		t.Fatalf("%d descriptors under the cache, want 1", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.OpenLogs() != 0 || openFDsUnder(t, dir) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle log still open: %d logs, %d descriptors", s.OpenLogs(), openFDsUnder(t, dir))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.AddReturn(ctx, sampleReturn(jid, "web1")); !errors.Is(err, ErrDuplicateReturn) {
		t.Errorf("duplicate after the idle close: %v", err)
	}
	mustReturn(t, s, sampleReturn(jid, "web2"))
	if _, rets, err := s.Get(ctx, jid); err != nil || !slices.Equal(minionsOf(rets), []string{"web1", "web2"}) {
		t.Errorf("Get = %v, %v", minionsOf(rets), err)
	}
}

// TestRestartRefusesDuplicates: a new FileStore on the same directory
// (a master restart) still refuses a second return, whatever state the
// first store was left in.
func TestRestartRefusesDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close bool // Close the first store (clean shutdown) or abandon it
		sync  bool
	}{
		{"clean shutdown", true, false},
		{"abandoned", false, false},
		{"abandoned, synced returns", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := openStore(t)
			s.SyncReturns = tc.sync
			ctx := t.Context()
			jid := jidAt(t0)
			mustSave(t, s, sampleJob(jid))
			for _, m := range []string{"web1", "web2"} {
				mustReturn(t, s, sampleReturn(jid, m))
			}
			if tc.close {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			s2 := reopen(t, dir)
			for _, c := range []struct {
				minion string
				want   error
			}{{"web1", ErrDuplicateReturn}, {"web2", ErrDuplicateReturn}, {"web3", nil}, {"web3", ErrDuplicateReturn}} {
				if err := s2.AddReturn(ctx, sampleReturn(jid, c.minion)); !errors.Is(err, c.want) {
					t.Errorf("after restart AddReturn(%s) = %v, want %v", c.minion, err, c.want)
				}
			}
			s3 := reopen(t, dir)
			if _, rets, err := s3.Get(ctx, jid); err != nil || !slices.Equal(minionsOf(rets), []string{"web1", "web2", "web3"}) {
				t.Errorf("after two restarts Get = %v, %v", minionsOf(rets), err)
			}
		})
	}
}

// TestFailedWriteFreesMinion: when the append fails, the minion is not
// marked as answered, so its retry is stored.
func TestFailedWriteFreesMinion(t *testing.T) {
	s, dir := openStore(t)
	ctx := t.Context()
	jid := jidAt(t0)
	mustSave(t, s, sampleJob(jid))
	mustReturn(t, s, sampleReturn(jid, "web1"))
	ref := s.logs[jid]
	good := ref.log.f
	ro, err := os.Open(filepath.Join(dir, jid, returnsFile))
	if err != nil {
		t.Fatal(err)
	}
	ref.log.f = ro // writes now fail with EBADF
	err = s.AddReturn(ctx, sampleReturn(jid, "web2"))
	if err == nil || errors.Is(err, ErrDuplicateReturn) || !strings.Contains(err.Error(), returnsFile) {
		t.Fatalf("write to a read-only log: %v, want an error naming the file", err)
	}
	ref.log.f = good
	ro.Close()
	mustReturn(t, s, sampleReturn(jid, "web2"))
	if _, rets, err := s.Get(ctx, jid); err != nil || !slices.Equal(minionsOf(rets), []string{"web1", "web2"}) {
		t.Errorf("after the retry Get = %v, %v", minionsOf(rets), err)
	}
}

// TestSaveJobVisibleAndSynced: SaveJob's record is usable at once, before
// its background fsync, and the syncer drains and stops.
func TestSaveJobVisibleAndSynced(t *testing.T) {
	s, _ := openStore(t)
	s.SyncEvery = 5 * time.Millisecond
	ctx := t.Context()
	var jids []string
	for i := range 20 {
		jid := jidAt(t0.Add(time.Duration(i) * time.Second))
		jids = append(jids, jid)
		mustSave(t, s, sampleJob(jid))
		mustReturn(t, s, sampleReturn(jid, "web1"))
		if _, rets, err := s.Get(ctx, jid); err != nil || len(rets) != 1 {
			t.Fatalf("Get right after SaveJob: %d returns, %v", len(rets), err)
		}
		if l, err := s.List(ctx, 1); err != nil || len(l) != 1 || l[0].JID != jid {
			t.Fatalf("List right after SaveJob: %v, %v", l, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.dirtyMu.Lock()
		pending, running := len(s.dirty), s.syncing
		s.dirtyMu.Unlock()
		if pending == 0 && !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("syncer still has %d jobs (running %v)", pending, running)
		}
		time.Sleep(time.Millisecond)
	}
	// Flush with nothing pending and with something pending.
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.SyncEvery = time.Hour
	mustSave(t, s, sampleJob(jidAt(t0.Add(time.Hour))))
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.dirtyMu.Lock()
	pending := len(s.dirty)
	s.dirtyMu.Unlock()
	if pending != 0 {
		t.Errorf("Flush left %d jobs unsynced", pending)
	}
}

func TestScanReturns(t *testing.T) {
	jid := jidAt(t0)
	line := func(id string, extra ...string) string {
		r := sampleReturn(jid, id)
		if len(extra) > 0 {
			r.JID = extra[0]
		}
		return jsonOf(r) + "\n"
	}
	tests := []struct {
		name     string
		data     string
		ids      []string
		valid    int // -1: the whole input
		problems []string
	}{
		{"empty", "", nil, 0, nil},
		{"two", line("a") + line("b"), []string{"a", "b"}, -1, nil},
		{"torn tail", line("a") + `{"jid":"x`, []string{"a"}, len(line("a")), nil},
		{"blank lines", "\n" + line("a") + "  \n", []string{"a"}, -1, nil},
		{"duplicate keeps the first", line("a") + line("b") + line("a"), []string{"a", "b"}, -1, []string{"log:3: second return from \"a\""}},
		{"other job", line("a", jidAt(t0.Add(time.Second))) + line("b"), []string{"b"}, -1, []string{"log:1: return for job"}},
		{"bad minion", line("../x") + line("b"), []string{"b"}, -1, []string{"log:1: invalid minion id"}},
		{"bad json mid-file", line("a") + "{oops\n" + line("b"), []string{"a", "b"}, -1, []string{"log:2: invalid character"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, full := range []bool{false, true} {
				var ids []string
				valid, problems := scanReturns("log", []byte(tc.data), jid, full, func(r Return) {
					ids = append(ids, r.MinionID)
					if full && !reflect.DeepEqual(r, sampleReturn(jid, r.MinionID)) {
						t.Errorf("decoded %s", jsonOf(r))
					}
				})
				want := tc.valid
				if want < 0 {
					want = len(tc.data)
				}
				if !slices.Equal(ids, tc.ids) || valid != want || len(problems) != len(tc.problems) {
					t.Fatalf("full=%v: ids %v valid %d problems %v; want %v %d %v", full, ids, valid, problems, tc.ids, want, tc.problems)
				}
				for i, p := range problems {
					if !strings.Contains(p.Error(), tc.problems[i]) {
						t.Errorf("problem %q, want one containing %q", p, tc.problems[i])
					}
				}
			}
		})
	}
}

// FuzzScanReturns: any bytes read as a returns log never panic, never
// yield a minion twice or a line past the last newline.
func FuzzScanReturns(f *testing.F) {
	jid := jidAt(t0)
	one := jsonOf(sampleReturn(jid, "web1")) + "\n"
	for _, s := range []string{"", one, one + one, one + `{"jid":"` + jid + `","id":"web2"`, "\n\n", `{"jid":"` + jid + `","id":"a"}` + "\n" + `{"id":"a","jid":"` + jid + `"}` + "\n", "{\x00\n", one[:40]} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, full := range []bool{false, true} {
			seen := map[string]bool{}
			valid, _ := scanReturns("log", data, jid, full, func(r Return) {
				if seen[r.MinionID] {
					t.Fatalf("minion %q visited twice", r.MinionID)
				}
				seen[r.MinionID] = true
				if r.JID != jid || checkMinionID(r.MinionID) != nil {
					t.Fatalf("visited a bad return %+v", r)
				}
			})
			if valid < 0 || valid > len(data) || (valid > 0 && data[valid-1] != '\n') || bytes.IndexByte(data[valid:], '\n') >= 0 {
				t.Fatalf("valid = %d for %q", valid, data)
			}
		}
	})
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// TestFreshJobWithExistingLog: the shortcut for jobs this store just
// created falls back to reading the log if one is there after all.
func TestFreshJobWithExistingLog(t *testing.T) {
	s, dir := openStore(t)
	jid := jidAt(t0)
	mustSave(t, s, sampleJob(jid))
	if err := os.WriteFile(filepath.Join(dir, jid, returnsFile), []byte(jsonOf(sampleReturn(jid, "web1"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.AddReturn(t.Context(), sampleReturn(jid, "web1")); !errors.Is(err, ErrDuplicateReturn) {
		t.Errorf("AddReturn over an existing log: %v, want ErrDuplicateReturn", err)
	}
	// And a fresh job whose directory vanished is not found, not recreated.
	gone := jidAt(t0.Add(time.Second))
	mustSave(t, s, sampleJob(gone))
	if err := os.RemoveAll(filepath.Join(dir, gone)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddReturn(t.Context(), sampleReturn(gone, "web1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddReturn to a vanished job: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("vanished job recreated: %v", err)
	}
}

// TestUnknownJIDsDoNotEvict: returns for jobs that do not exist are
// refused without pushing the open logs of real jobs out of the table.
func TestUnknownJIDsDoNotEvict(t *testing.T) {
	s, dir := openStore(t)
	s.MaxOpenLogs = 2
	ctx := t.Context()
	real := []string{jidAt(t0), jidAt(t0.Add(time.Second))}
	for _, jid := range real {
		mustSave(t, s, sampleJob(jid))
		mustReturn(t, s, sampleReturn(jid, "web1"))
	}
	before := map[string]*logRef{}
	for _, jid := range real {
		before[jid] = s.logs[jid]
	}
	for i := range 50 {
		err := s.AddReturn(ctx, sampleReturn(jidAt(t0.Add(time.Hour+time.Duration(i)*time.Second)), "web1"))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("return for an unknown jid: %v", err)
		}
	}
	for _, jid := range real {
		if s.logs[jid] != before[jid] {
			t.Errorf("log of %s was evicted by returns for unknown jids", jid)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != len(real) {
		t.Errorf("cache holds %d entries, want %d", len(ents), len(real))
	}
}
