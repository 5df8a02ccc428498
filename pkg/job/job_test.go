package job

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
)

func TestFormatJID(t *testing.T) {
	plus2 := time.FixedZone("+02", 2*3600)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 3, 5, 7, 8, 9, 123456000, time.UTC), "20240305070809123456"},
		{time.Date(2024, 3, 5, 7, 8, 9, 999, time.UTC), "20240305070809000000"}, // sub-µs dropped
		{time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), "19991231235959999999"},
		{time.Date(2024, 1, 1, 1, 0, 0, 0, plus2), "20231231230000000000"}, // always UTC
	}
	for _, tc := range tests {
		var g jidGen
		if got := g.next(tc.t); got != tc.want {
			t.Errorf("jid for %v = %s, want %s", tc.t, got, tc.want)
		}
	}
}

func TestJIDBump(t *testing.T) {
	var g jidGen
	base := time.Date(2024, 6, 1, 12, 0, 0, 500000000, time.UTC)
	got := []string{
		g.next(base),
		g.next(base),                      // same microsecond
		g.next(base.Add(time.Nanosecond)), // still the same microsecond
		g.next(base.Add(-time.Hour)),      // clock stepped back
		g.next(base.Add(time.Second)),     // clock moved on
	}
	want := []string{
		"20240601120000500000",
		"20240601120000500001",
		"20240601120000500002",
		"20240601120000500003",
		"20240601120001500000",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("jid %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestNewJIDUniqueUnderLoad(t *testing.T) {
	const workers, each = 4, 20000
	start := time.Now()
	results := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			out := make([]string, each)
			for i := range out {
				out[i] = NewJID(time.Now())
			}
			results[w] = out
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for w, out := range results {
		for i, jid := range out {
			if seen[jid] {
				t.Fatalf("duplicate jid %s", jid)
			}
			seen[jid] = true
			if i > 0 && jid <= out[i-1] {
				t.Fatalf("worker %d: jid %s not after %s", w, jid, out[i-1])
			}
			ts, err := ParseJID(jid)
			if err != nil {
				t.Fatal(err)
			}
			// Bumping may run ahead of the clock by at most one µs per jid.
			if ts.Before(start.Truncate(time.Microsecond)) || ts.After(time.Now().Add(workers*each*time.Microsecond)) {
				t.Fatalf("jid %s time %v outside the test's run", jid, ts)
			}
		}
	}
}

func TestParseJID(t *testing.T) {
	tests := []struct {
		jid  string
		want time.Time
		err  string
	}{
		{"20240305070809123456", time.Date(2024, 3, 5, 7, 8, 9, 123456000, time.UTC), ""},
		{"20000229000000000000", time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC), ""},
		{"", time.Time{}, "want 20 digits"},
		{"2024030507080912345", time.Time{}, "want 20 digits"},
		{"202403050708091234567", time.Time{}, "want 20 digits"},
		{"../../../etc/passwd0", time.Time{}, "not a digit"},
		{"2024030507080912345/", time.Time{}, "not a digit"},
		{" 0240305070809123456", time.Time{}, "not a digit"},
		{"-0240305070809123456", time.Time{}, "not a digit"},
		{"2024030507080912345\x00", time.Time{}, "not a digit"},
		{"20241305070809123456", time.Time{}, "month out of range"},
		{"20230229070809123456", time.Time{}, "day out of range"},
		{"20240305250809123456", time.Time{}, "hour out of range"},
		{"20240305076009123456", time.Time{}, "minute out of range"},
		{"20240305070860123456", time.Time{}, "second out of range"},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.jid), func(t *testing.T) {
			got, err := ParseJID(tc.jid)
			if tc.err == "" {
				if err != nil || !got.Equal(tc.want) {
					t.Fatalf("ParseJID = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidJID) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), strconv.Quote(tc.jid)) {
				t.Fatalf("err = %v; want ErrInvalidJID naming the jid and %q", err, tc.err)
			}
		})
	}
}

func FuzzParseJID(f *testing.F) {
	for _, s := range []string{"20240305070809123456", "99991231235959999999", "00000101000000000000", "../x", "", "2024030507080912345\u0660"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, jid string) {
		ts, err := ParseJID(jid)
		if err != nil {
			if !errors.Is(err, ErrInvalidJID) {
				t.Fatalf("error does not wrap ErrInvalidJID: %v", err)
			}
			return
		}
		// Only canonical jids pass: formatting the parsed time gives the
		// input back, and the jid is a single path element.
		if back := formatJID(ts.UnixMicro()); back != jid {
			t.Fatalf("ParseJID(%q) = %v, which formats as %q", jid, ts, back)
		}
		const root = "/var/cache/brine/jobs"
		if filepath.Dir(filepath.Join(root, jid)) != root {
			t.Fatalf("jid %q escapes the cache", jid)
		}
	})
}

func FuzzCheckMinionID(f *testing.F) {
	for _, s := range []string{"web01", "", ".", "..", "a/b", "a\x00b", `a\b`, "ü", "a..b", strings.Repeat("z", 250), strings.Repeat("z", 251)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := checkMinionID(id)
		if err != nil {
			if !errors.Is(err, ErrInvalidMinionID) || !strings.Contains(err.Error(), strconv.Quote(id)) {
				t.Fatalf("unhelpful error for %q: %v", id, err)
			}
			return
		}
		const root = "/cache/20240305070809123456/ret"
		name := id + ".json"
		if p := filepath.Join(root, name); filepath.Dir(p) != root || filepath.Base(p) != name {
			t.Fatalf("minion id %q escapes ret/: %s", id, p)
		}
		if len(name) > 255 || id[0] == '.' {
			t.Fatalf("accepted %q", id)
		}
		for _, r := range id {
			if unicode.IsControl(r) {
				t.Fatalf("accepted control character in %q", id)
			}
		}
	})
}
