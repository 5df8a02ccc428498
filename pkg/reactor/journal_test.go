package reactor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// accept writes one event to sp and returns its id.
func accept(t *testing.T, sp *spool, tag, delivery string, data map[string]any) string {
	t.Helper()
	now := time.Now()
	id := newID(now)
	if err := sp.write(id, tag, delivery, data, now); err != nil {
		t.Fatal(err)
	}
	return id
}

func segmentFiles(t *testing.T, spoolDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(spoolDir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// lastSegment is the path of the newest segment file.
func lastSegment(t *testing.T, spoolDir string) string {
	t.Helper()
	segs, err := listSegments(filepath.Join(spoolDir, "journal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment: %v", err)
	}
	return filepath.Join(spoolDir, "journal", segmentName(segs[len(segs)-1]))
}

func appendBytes(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestJournalRestart: what a restarted spool replays after the journal was
// left in each state a crash or a failing disk can leave it in.
func TestJournalRestart(t *testing.T) {
	tests := []struct {
		name string
		// build writes to the spool in dir and returns the tags a restart
		// must replay, in order.
		build       func(t *testing.T, dir string) []string
		wantDamaged int
		wantBad     int // segments kept as *.bad
	}{
		{"accepted events replay in arrival order", func(t *testing.T, dir string) []string {
			sp, _ := openSpool(dir)
			accept(t, sp, "t/1", "", map[string]any{"n": int64(1)})
			accept(t, sp, "t/2", "d", map[string]any{"n": int64(2)})
			return []string{"t/1", "t/2"}
		}, 0, 0},
		{"reacted-to events do not", func(t *testing.T, dir string) []string {
			sp, _ := openSpool(dir)
			a := accept(t, sp, "t/1", "", map[string]any{})
			b := accept(t, sp, "t/2", "d", map[string]any{})
			accept(t, sp, "t/3", "", map[string]any{})
			if err := sp.done(a, ""); err != nil {
				t.Fatal(err)
			}
			if err := sp.done(b, deliveryKey("t/2", "d")); err != nil {
				t.Fatal(err)
			}
			return []string{"t/3"}
		}, 0, 0},
		{"marks are durable in the order made", func(t *testing.T, dir string) []string {
			// Only the second mark is waited for: the first, made before
			// it, is on disk too (the reactor relies on this for the
			// per-tag order across a crash).
			sp, _ := openSpool(dir)
			a := accept(t, sp, "t/x", "", map[string]any{})
			b := accept(t, sp, "t/x", "", map[string]any{})
			sp.markDone(a, "")
			if err := sp.finish(sp.markDone(b, "")); err != nil {
				t.Fatal(err)
			}
			return nil
		}, 0, 0},
		{"a torn tail is a write never acknowledged", func(t *testing.T, dir string) []string {
			sp, _ := openSpool(dir)
			accept(t, sp, "t/1", "", map[string]any{})
			whole := frame(nil, []byte(`{"op":"accept","id":"9","tag":"t/torn","data":{}}`))
			appendBytes(t, lastSegment(t, dir), whole[:len(whole)-3])
			return []string{"t/1"}
		}, 0, 0},
		{"a damaged segment is reported and kept, its good records replayed", func(t *testing.T, dir string) []string {
			sp, _ := openSpool(dir)
			accept(t, sp, "t/1", "", map[string]any{})
			first := lastSegment(t, dir)
			bad := frame(nil, []byte(`{"op":"accept","id":"9","tag":"t/bad","data":{}}`))
			bad[len(bad)-2] ^= 0xff // checksum no longer matches
			appendBytes(t, first, bad)
			appendBytes(t, first, frame(nil, []byte(`{"op":"accept","id":"99","tag":"t/after","data":{}}`)))
			// A later segment, as the next process would write.
			later := frame(nil, fmt.Appendf(nil, `{"op":"accept","id":"%019d-x","tag":"t/2","data":{}}`, time.Now().Add(time.Hour).UnixNano()))
			if err := os.WriteFile(filepath.Join(dir, "journal", segmentName(1000)), later, 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"t/1", "t/2"}
		}, 1, 1},
		{"a record that is not an event is reported", func(t *testing.T, dir string) []string {
			sp, _ := openSpool(dir)
			accept(t, sp, "t/1", "", map[string]any{})
			appendBytes(t, lastSegment(t, dir), frame(nil, []byte(`not json`)))
			return []string{"t/1"}
		}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := tc.build(t, dir)
			sp, err := openSpool(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range sp.replayed {
				got = append(got, e.rec.Tag)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("replayed %v, want %v", got, want)
			}
			if len(sp.damaged) != tc.wantDamaged {
				t.Errorf("damage reported: %v, want %d reports", sp.damaged, tc.wantDamaged)
			}
			bad, _ := filepath.Glob(filepath.Join(dir, "journal", "*.bad"))
			if len(bad) != tc.wantBad {
				t.Errorf("kept %v, want %d *.bad", bad, tc.wantBad)
			}
			// The pending events were rewritten into one fresh segment:
			// a second restart sees the same.
			sp2, err := openSpool(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(sp2.replayed) != len(want) || len(sp2.damaged) != 0 {
				t.Errorf("second restart: %d replayed, damage %v", len(sp2.replayed), sp2.damaged)
			}
			if segs := segmentFiles(t, dir); len(segs) > 1+tc.wantBad {
				t.Errorf("segments after restart %v", segs)
			}
		})
	}
}

// Data survives the journal as the webhook decoded it: integers as int64.
func TestJournalKeepsData(t *testing.T) {
	dir := t.TempDir()
	sp, _ := openSpool(dir)
	data := map[string]any{"n": int64(1) << 53, "f": 1.5, "s": "x", "l": []any{"a", int64(2)}, "m": map[string]any{"k": true}}
	accept(t, sp, "t/x", "d-1", data)
	sp2, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp2.replayed) != 1 {
		t.Fatalf("replayed %d", len(sp2.replayed))
	}
	e := sp2.replayed[0]
	if !reflect.DeepEqual(e.data, data) || e.rec.Delivery != "d-1" || e.rec.Tag != "t/x" {
		t.Errorf("replayed %+v %#v", e.rec, e.data)
	}
}

// Segments whose events were all reacted to are deleted, oldest first, and
// never the one being written to.
func TestJournalSegmentsDeleted(t *testing.T) {
	dir := t.TempDir()
	sp, _ := openSpool(dir)
	sp.j.limit = 256 // a few records per segment
	pinned := accept(t, sp, "t/pinned", "", map[string]any{})
	for i := range 40 {
		id := accept(t, sp, "t/x", "", map[string]any{"i": int64(i)})
		if err := sp.done(id, deliveryKey("t/x", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The first segment holds an event not reacted to: everything after
	// it stays too, since its marks refer to that segment's neighbours.
	if n := len(segmentFiles(t, dir)); n < 10 {
		t.Fatalf("%d segments, want many held by the pending first one", n)
	}
	if err := sp.done(pinned, ""); err != nil {
		t.Fatal(err)
	}
	// After the commit of that mark, all but the segment written to go.
	waitFor(t, "segments to be deleted", 5*time.Second, func() bool { return len(segmentFiles(t, dir)) == 1 })
	if n := spooledOnDisk(t, dir); n != 0 {
		t.Errorf("%d events still spooled", n)
	}
	sp2, _ := openSpool(dir)
	if len(sp2.replayed) != 0 || !sp2.isDelivered(deliveryKey("t/x", "39")) {
		t.Errorf("after restart: %d replayed, delivery 39 recorded %v", len(sp2.replayed), sp2.isDelivered(deliveryKey("t/x", "39")))
	}
}

// Appends made while a commit runs share the next one.
func TestJournalGroupCommit(t *testing.T) {
	dir := t.TempDir()
	sp, _ := openSpool(dir)
	// Hold the committer as if an fsync were under way.
	sp.j.mu.Lock()
	sp.j.running = true
	sp.j.mu.Unlock()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now()
			errs <- sp.write(newID(now), "t/x", fmt.Sprint(i), map[string]any{}, now)
		}()
	}
	waitFor(t, "every append", 5*time.Second, func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return len(sp.seqOf) == n
	})
	go sp.j.run()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := sp.j.commits.Load(); c != 1 {
		t.Errorf("%d commits for %d concurrent writes, want 1", c, n)
	}
	if got := spooledOnDisk(t, dir); got != n {
		t.Errorf("%d on disk, want %d", got, n)
	}
}

// FuzzReadFrames: any bytes are read without panicking, frames written
// are read back, and what follows a bad frame is never returned.
func FuzzReadFrames(f *testing.F) {
	f.Add([]byte{}, []byte("x"))
	f.Add(frame(nil, []byte(`{"op":"accept"}`)), []byte(`{}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, []byte(nil))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0}, []byte("ab"))
	f.Fuzz(func(t *testing.T, junk, payload []byte) {
		got, _ := readFrames(junk)
		total := 0
		for _, p := range got {
			total += frameHeader + len(p)
		}
		if total > len(junk) {
			t.Fatalf("frames cover %d bytes of %d", total, len(junk))
		}
		// Good frames, then junk: the good ones come back intact.
		b := frame(frame(nil, payload), []byte("second"))
		got, err := readFrames(append(b, junk...))
		if len(got) < 2 || !bytes.Equal(got[0], payload) || string(got[1]) != "second" {
			t.Fatalf("lost good frames: %q %v", got, err)
		}
	})
}

// An event spooled by an earlier version (a JSON file in pending/) is
// replayed after the upgrade, reacted to once, and its file removed; its
// delivery is then refused as a replay.
func TestEarlierVersionSpoolReplayed(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "r.sls", "x:\n  local.test.arg:\n    - tgt: a\n    - arg: [{{ data['n'] }}]\n")
	spoolDir := filepath.Join(dir, "spool")
	id := newID(time.Now().Add(-time.Minute))
	writeFile(t, spoolDir, "pending/"+id+".json",
		fmt.Sprintf(`{"id": %q, "tag": "t/x", "delivery": "d-old", "accepted": "2026-11-25T18:00:00Z", "data": {"n": 7}}`, id))
	local := &fakeLocal{}
	r, err := New(Config{SpoolDir: spoolDir, Rules: []Rule{{TagGlob: "t/*", Files: []string{file}}}}, nil, local, nil)
	if err != nil {
		t.Fatal(err)
	}
	runReactor(t, r)
	waitFor(t, "the replayed reaction", 5*time.Second, func() bool { return local.n.Load() == 1 })
	waitFor(t, "the old file to go", 2*time.Second, func() bool { return spooledOnDisk(t, spoolDir) == 0 })
	if c := local.all()[0]; fmt.Sprint(c.Args) != "[7]" {
		t.Errorf("replayed %+v", c)
	}
	if err := r.Accept(context.Background(), "t/x", map[string]any{}, "d-old"); err == nil {
		t.Error("the old event's delivery was accepted again")
	}
}
