package job

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func openStore(t testing.TB) (*FileStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "jobs")
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// jidAt builds a jid for a chosen time without touching the process-wide
// generator, so tests control ages exactly.
func jidAt(t time.Time) string { return formatJID(t.UnixMicro()) }

var t0 = time.Date(2024, 3, 5, 7, 8, 9, 123456000, time.UTC)

func sampleJob(jid string) Job {
	return Job{
		JID:       jid,
		Fun:       "state.apply",
		Args:      []any{"webserver", 3.0, map[string]any{"pillar": map[string]any{"port": 8080.0, "tags": []any{"a", "b"}}}, true, nil},
		Kwargs:    map[string]any{"test": true, "saltenv": "base"},
		Target:    "web*",
		TgtType:   "glob",
		User:      "root",
		Minions:   []string{"web1", "web2"},
		Offline:   []string{"web3"},
		StartTime: t0,
	}
}

func sampleReturn(jid, minion string) Return {
	return Return{
		JID:      jid,
		MinionID: minion,
		Fun:      "state.apply",
		Return: map[string]any{
			"file_|-/etc/motd_|-/etc/motd_|-managed": map[string]any{
				"result":      true,
				"changes":     map[string]any{"diff": "+hello\n"},
				"__run_num__": 0.0,
			},
		},
		Success:    true,
		Retcode:    0,
		Time:       t0.Add(2 * time.Second),
		DurationMs: 1234,
	}
}

func mustSave(t testing.TB, s Store, j Job) {
	t.Helper()
	if err := s.SaveJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

func mustReturn(t testing.TB, s Store, r Return) {
	t.Helper()
	if err := s.AddReturn(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestSaveGetRoundTrip(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	jid := jidAt(t0)
	j := sampleJob(jid)
	mustSave(t, s, j)
	// Added out of order; Get sorts by minion id.
	r2, r1 := sampleReturn(jid, "web2"), sampleReturn(jid, "web1")
	r2.Success, r2.Retcode, r2.Error, r2.Return = false, 1, "state failed", []any{"line 1", 2.5}
	mustReturn(t, s, r2)
	mustReturn(t, s, r1)

	gotJob, rets, err := s.Get(ctx, jid)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotJob, j) {
		t.Errorf("job round trip:\n got %s\nwant %s", jsonOf(gotJob), jsonOf(j))
	}
	want := []Return{r1, r2}
	if !reflect.DeepEqual(rets, want) {
		t.Errorf("returns round trip:\n got %s\nwant %s", jsonOf(rets), jsonOf(want))
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestGoldenFiles pins the on-disk JSON: other tools (and a future
// JetStream store's migration) read these files. job.json is compared
// indented; the returns log as it is, one line per return.
func TestGoldenFiles(t *testing.T) {
	s, dir := openStore(t)
	jid := jidAt(t0)
	mustSave(t, s, sampleJob(jid))
	mustReturn(t, s, sampleReturn(jid, "web1"))
	r2 := sampleReturn(jid, "web2")
	r2.Success, r2.Retcode, r2.Error, r2.Return = false, 1, "state failed", []any{"line 1", 2.5}
	mustReturn(t, s, r2)
	for _, f := range []struct {
		path, golden string
		indent       bool
	}{
		{filepath.Join(dir, jid, "job.json"), "job.json.golden", true},
		{filepath.Join(dir, jid, "returns.jsonl"), "returns.jsonl.golden", false},
	} {
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		var pretty bytes.Buffer
		if f.indent {
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
		} else {
			pretty.Write(got)
		}
		golden := filepath.Join("testdata", f.golden)
		if *update {
			if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pretty.Bytes(), want) {
			t.Errorf("%s differs from %s:\n%s", f.path, golden, pretty.Bytes())
		}
	}
}

func TestLayoutAndModes(t *testing.T) {
	s, dir := openStore(t)
	jid := jidAt(t0)
	mustSave(t, s, sampleJob(jid))
	mustReturn(t, s, sampleReturn(jid, "web1"))
	for p, want := range map[string]fs.FileMode{
		dir:                                      fs.ModeDir | 0o700,
		filepath.Join(dir, jid):                  fs.ModeDir | 0o700,
		filepath.Join(dir, jid, "job.json"):      0o600,
		filepath.Join(dir, jid, "returns.jsonl"): 0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	// No temp files left behind, and no file per return.
	if _, err := os.Stat(filepath.Join(dir, jid, "ret")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ret/ created: %v", err)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") {
			t.Errorf("leftover %s", p)
		}
		return nil
	})
}

func TestSaveJobDetails(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	jid := jidAt(t0)
	j := sampleJob(jid)
	j.StartTime = time.Time{}
	mustSave(t, s, j)
	mustReturn(t, s, sampleReturn(jid, "web1"))
	got, _, err := s.Get(ctx, jid)
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartTime.Equal(t0) {
		t.Errorf("zero StartTime became %v, want the jid's time %v", got.StartTime, t0)
	}
	// Saving again (e.g. with the resolved minion list) replaces the job
	// record and keeps the returns.
	j.Minions = []string{"web1", "web2", "web4"}
	mustSave(t, s, j)
	got, rets, err := s.Get(ctx, jid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Minions, j.Minions) || len(rets) != 1 {
		t.Errorf("after re-save: minions %v, %d returns", got.Minions, len(rets))
	}
	var nan Job = sampleJob(jidAt(t0.Add(time.Second)))
	nan.Args = []any{func() {}}
	if err := s.SaveJob(ctx, nan); err == nil || !strings.Contains(err.Error(), nan.JID) {
		t.Errorf("unencodable job: err = %v, want one naming %s", err, nan.JID)
	}
}

func TestBadInput(t *testing.T) {
	s, dir := openStore(t)
	ctx := t.Context()
	jid := jidAt(t0)
	mustSave(t, s, sampleJob(jid))
	first := sampleReturn(jid, "web1")
	mustReturn(t, s, first)

	unknown := jidAt(t0.Add(time.Hour))
	tests := []struct {
		name  string
		call  func() error
		want  error
		names string
	}{
		{"save path trick", func() error { return s.SaveJob(ctx, Job{JID: "../../../../tmp/evil"}) }, ErrInvalidJID, "../../../../tmp/evil"},
		{"save empty jid", func() error { return s.SaveJob(ctx, Job{}) }, ErrInvalidJID, `""`},
		{"get path trick", func() error { _, _, err := s.Get(ctx, "../jobs/2024030507080"); return err }, ErrInvalidJID, "../jobs"},
		{"get unknown", func() error { _, _, err := s.Get(ctx, unknown); return err }, ErrNotFound, unknown},
		{"return for unknown jid", func() error { return s.AddReturn(ctx, sampleReturn(unknown, "web1")) }, ErrNotFound, unknown},
		{"return with bad jid", func() error { return s.AddReturn(ctx, sampleReturn("x/../../y", "web1")) }, ErrInvalidJID, "x/../../y"},
		{"return from ../ minion", func() error { return s.AddReturn(ctx, sampleReturn(jid, "../../../job")) }, ErrInvalidMinionID, "../../../job"},
		{"return from dot minion", func() error { return s.AddReturn(ctx, sampleReturn(jid, ".hidden")) }, ErrInvalidMinionID, ".hidden"},
		{"return from NUL minion", func() error { return s.AddReturn(ctx, sampleReturn(jid, "a\x00b")) }, ErrInvalidMinionID, `a\x00b`},
		{"return from long minion", func() error { return s.AddReturn(ctx, sampleReturn(jid, strings.Repeat("m", 251))) }, ErrInvalidMinionID, "longer than 250 bytes"},
		{"duplicate return", func() error {
			r := sampleReturn(jid, "web1")
			r.Return = "forged"
			return s.AddReturn(ctx, r)
		}, ErrDuplicateReturn, "web1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("err = %v, want %v naming %s", err, tc.want, tc.names)
			}
		})
	}
	_, rets, err := s.Get(ctx, jid)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rets, []Return{first}) {
		t.Errorf("returns after bad input: %s", jsonOf(rets))
	}
	// Nothing was created outside the single good job.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != jid {
		t.Errorf("cache holds %v", entries)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("path trick created something: %v", err)
	}
}

func TestListNewestFirst(t *testing.T) {
	s, dir := openStore(t)
	ctx := t.Context()
	var jids []string
	for i := range 30 {
		jid := jidAt(t0.Add(time.Duration(i) * time.Minute))
		jids = append(jids, jid)
		mustSave(t, s, sampleJob(jid))
	}
	slices.Reverse(jids)
	// Junk the cache directory may collect, and a job whose job.json
	// never landed: none of it is a job.
	os.Mkdir(filepath.Join(dir, "lost+found"), 0o700)
	os.WriteFile(filepath.Join(dir, ".tmp-1"), nil, 0o600)
	torn := jidAt(t0.Add(time.Hour))
	os.MkdirAll(filepath.Join(dir, torn, "ret"), 0o700)

	for _, limit := range []int{1, 10, 30, 50, 0, -1} {
		got, err := s.List(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		n := min(limit, 30)
		if limit <= 0 {
			n = 30
		}
		var gotJIDs []string
		for _, j := range got {
			gotJIDs = append(gotJIDs, j.JID)
		}
		if !slices.Equal(gotJIDs, jids[:n]) {
			t.Errorf("List(%d) = %v, want %v", limit, gotJIDs, jids[:n])
		}
	}

	// A crash between write and fsync can leave job.json empty, cut
	// short or garbled: List skips such a job (and logs it) instead of
	// failing the whole listing; Get names the file.
	damaged := map[string][]byte{
		jids[0]:  nil,                    // empty
		jids[10]: []byte(`{"jid":"2024`), // cut short
		jids[29]: []byte("{not json"),    // garbled
	}
	for jid, content := range damaged {
		if err := os.WriteFile(filepath.Join(dir, jid, "job.json"), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, 0)
	if err != nil {
		t.Fatalf("List with damaged records: %v", err)
	}
	var want []string
	for _, jid := range jids {
		if _, bad := damaged[jid]; !bad {
			want = append(want, jid)
		}
	}
	var gotJIDs []string
	for _, j := range got {
		gotJIDs = append(gotJIDs, j.JID)
	}
	if !slices.Equal(gotJIDs, want) {
		t.Errorf("List with damaged records = %v, want %v", gotJIDs, want)
	}
	if got, _ := s.List(ctx, 3); len(got) != 3 || got[0].JID != jids[1] {
		t.Errorf("List(3) with the newest damaged = %d jobs, first %v", len(got), got)
	}
	for jid := range damaged {
		path := filepath.Join(dir, jid, "job.json")
		if _, _, err := s.Get(ctx, jid); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Get of damaged %s: err = %v, want one naming %s", jid, err, path)
		}
	}
}

func TestPrune(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	now := t0
	ages := []time.Duration{72 * time.Hour, 25 * time.Hour, 24*time.Hour + time.Microsecond, 24 * time.Hour, time.Hour, 0}
	var jids []string
	for _, age := range ages {
		jid := jidAt(now.Add(-age))
		jids = append(jids, jid)
		mustSave(t, s, sampleJob(jid))
		mustReturn(t, s, sampleReturn(jid, "web1"))
	}
	n, err := s.Prune(ctx, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("pruned %d, want 3", n)
	}
	for i, jid := range jids {
		_, _, err := s.Get(ctx, jid)
		gone := errors.Is(err, ErrNotFound)
		if wantGone := ages[i] > 24*time.Hour; gone != wantGone {
			t.Errorf("job aged %v: gone=%v (err %v), want gone=%v", ages[i], gone, err, wantGone)
		}
	}
	if err := s.AddReturn(ctx, sampleReturn(jids[0], "late")); !errors.Is(err, ErrNotFound) {
		t.Errorf("late return to pruned job: %v, want ErrNotFound", err)
	}
	if n, err := s.Prune(ctx, now.Add(-24*time.Hour)); n != 0 || err != nil {
		t.Errorf("second prune = %d, %v", n, err)
	}
}

func TestReopen(t *testing.T) {
	s, dir := openStore(t)
	ctx := t.Context()
	for i := range 5 {
		jid := jidAt(t0.Add(time.Duration(i) * time.Second))
		mustSave(t, s, sampleJob(jid))
		for m := range i {
			mustReturn(t, s, sampleReturn(jid, fmt.Sprintf("web%d", m)))
		}
	}
	before, err := s.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A master restart: a new store over the same directory.
	s2, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	after, err := s2.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) || len(after) != 5 {
		t.Fatalf("List changed across reopen")
	}
	for i, j := range after {
		_, rets, err := s2.Get(ctx, j.JID)
		if err != nil {
			t.Fatal(err)
		}
		if want := 4 - i; len(rets) != want {
			t.Errorf("job %s: %d returns after reopen, want %d", j.JID, len(rets), want)
		}
	}
	if err := s2.AddReturn(ctx, sampleReturn(after[0].JID, "web0")); !errors.Is(err, ErrDuplicateReturn) {
		t.Errorf("duplicate after reopen: %v", err)
	}
}

// TestConcurrentAddReturn has many minions answer at once while a
// duplicate sender races itself and a pruner sweeps other jobs.
func TestConcurrentAddReturn(t *testing.T) {
	s, dir := openStore(t)
	ctx := t.Context()
	jid := jidAt(time.Now())
	mustSave(t, s, sampleJob(jid))
	for i := range 20 {
		mustSave(t, s, sampleJob(jidAt(t0.Add(time.Duration(i)*time.Second))))
	}
	const workers, each, dupRacers = 32, 8, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each+dupRacers+20*40+20)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := s.AddReturn(ctx, sampleReturn(jid, fmt.Sprintf("m%03d-%d", w, i))); err != nil {
					errs <- err
				}
			}
		})
	}
	var mu sync.Mutex
	wins, refusals := 0, 0
	for range dupRacers {
		wg.Go(func() {
			err := s.AddReturn(ctx, sampleReturn(jid, "dup"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrDuplicateReturn):
				refusals++
			default:
				errs <- err
			}
		})
	}
	// Late returns keep arriving for old jobs while they are pruned: each
	// must land before the prune or be refused, never resurrect a job or
	// trip the prune over a half-written file.
	for i := range 20 {
		old := jidAt(t0.Add(time.Duration(i) * time.Second))
		wg.Go(func() {
			for m := range 40 {
				err := s.AddReturn(ctx, sampleReturn(old, fmt.Sprintf("late%d", m)))
				if err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := s.Prune(ctx, t0.Add(time.Hour)); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if wins != 1 || refusals != dupRacers-1 {
		t.Errorf("duplicate race: %d accepted, %d refused; want 1 and %d", wins, refusals, dupRacers-1)
	}
	_, rets, err := s.Get(ctx, jid)
	if err != nil {
		t.Fatal(err)
	}
	if len(rets) != workers*each+1 {
		t.Errorf("%d returns stored, want %d", len(rets), workers*each+1)
	}
	if !slices.IsSortedFunc(rets, func(a, b Return) int { return strings.Compare(a.MinionID, b.MinionID) }) {
		t.Error("returns not sorted by minion id")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != jid {
		t.Errorf("after pruning the cache holds %v, want only %s", ents, jid)
	}
}

func TestStartPruner(t *testing.T) {
	s, _ := openStore(t)
	old := jidAt(time.Now().Add(-3 * time.Hour))
	fresh := jidAt(time.Now().Add(-time.Minute))
	mustSave(t, s, sampleJob(old))
	mustSave(t, s, sampleJob(fresh))

	// keep_jobs 0 keeps everything, as in Salt.
	ctx, cancel := context.WithCancel(t.Context())
	done := StartPruner(ctx, s, 0, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if _, _, err := s.Get(t.Context(), old); err != nil {
		t.Errorf("keep_jobs 0 pruned: %v", err)
	}
	cancel()
	<-done

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	done = StartPruner(ctx, s, time.Hour, 10*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := s.Get(t.Context(), old)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old job still present: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := s.Get(t.Context(), fresh); err != nil {
		t.Errorf("fresh job pruned: %v", err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("pruner did not stop")
	}
}
