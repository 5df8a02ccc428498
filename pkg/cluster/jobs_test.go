package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/job"
)

func openJobs(t *testing.T, n *Node) *JobStore {
	t.Helper()
	s, err := OpenJobStore(tctx(t), n, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jidAt is a jid for t; job.NewJID would bump a past time to after the
// last jid it issued.
func jidAt(t time.Time) string {
	return t.UTC().Format("20060102150405") + fmt.Sprintf("%06d", t.Nanosecond()/1000)
}

func jidClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, job.ErrNotFound):
		return "not-found"
	case errors.Is(err, job.ErrDuplicateReturn):
		return "duplicate"
	case errors.Is(err, job.ErrInvalidJID):
		return "bad-jid"
	case errors.Is(err, job.ErrInvalidMinionID):
		return "bad-id"
	}
	return "other: " + err.Error()
}

// TestJobStoreMatchesFileStore: same calls, same answers as the
// single-master job cache; a return added on one master is seen, and
// refused as a duplicate, on another.
func TestJobStoreMatchesFileStore(t *testing.T) {
	ctx := tctx(t)
	ref, err := job.OpenFileStore(filepath.Join(t.TempDir(), "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	a, c := openJobs(t, shared[0]), openJobs(t, shared[2])
	base := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC) // far from other tests' jids
	jids := []string{jidAt(base), jidAt(base.Add(time.Second)), jidAt(base.Add(2 * time.Second))}
	for i, jid := range jids {
		j := job.Job{JID: jid, Fun: "test.ping", Args: []any{}, Target: "*", TgtType: "glob", Minions: []string{"m1", "m2"}, User: "root"}
		if i == 2 {
			j.Offline = []string{"m2"}
		}
		if err := ref.SaveJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := a.SaveJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2001, 2, 3, 4, 6, 0, 0, time.UTC)
	cases := []struct {
		name string
		r    job.Return
		want string
	}{
		{"first", job.Return{JID: jids[0], MinionID: "m1", Fun: "test.ping", Return: true, Success: true, Time: at}, "ok"},
		{"second minion", job.Return{JID: jids[0], MinionID: "m2", Fun: "test.ping", Return: map[string]any{"n": 1}, Time: at}, "ok"},
		{"replay", job.Return{JID: jids[0], MinionID: "m1", Fun: "test.ping", Return: false, Time: at}, "duplicate"},
		{"unknown jid", job.Return{JID: jidAt(base.Add(time.Hour)), MinionID: "m1", Time: at}, "not-found"},
		{"bad jid", job.Return{JID: "../../etc", MinionID: "m1", Time: at}, "bad-jid"},
		{"bad id", job.Return{JID: jids[1], MinionID: "../x", Time: at}, "bad-id"},
		{"other job", job.Return{JID: jids[1], MinionID: "m1", Return: []any{"a", 2}, Time: at}, "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The cluster store gets the return through master C, the
			// file store directly.
			if got, want := jidClass(c.AddReturn(ctx, tc.r)), jidClass(ref.AddReturn(ctx, tc.r)); got != want || got != tc.want {
				t.Fatalf("cluster %s, file %s, want %s", got, want, tc.want)
			}
		})
	}
	for _, jid := range jids {
		rj, rr, rerr := ref.Get(ctx, jid)
		cj, cr, cerr := a.Get(ctx, jid)
		if rerr != nil || cerr != nil {
			t.Fatalf("get %s: %v %v", jid, rerr, cerr)
		}
		if jsonString(rj) != jsonString(cj) || jsonString(rr) != jsonString(cr) {
			t.Fatalf("get %s:\nfile    %s %s\ncluster %s %s", jid, jsonString(rj), jsonString(rr), jsonString(cj), jsonString(cr))
		}
	}
	if _, _, err := a.Get(ctx, jidAt(base.Add(2*time.Hour))); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
}

func TestJobListPruneClaim(t *testing.T) {
	ctx := tctx(t)
	a, b := openJobs(t, shared[1]), openJobs(t, shared[2])
	old := time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	oldJID := jidAt(old)
	if err := a.SaveJob(ctx, job.Job{JID: oldJID, Fun: "test.ping", Minions: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddReturn(ctx, job.Return{JID: oldJID, MinionID: "x", Return: true}); err != nil {
		t.Fatal(err)
	}
	newJID := job.NewJID(time.Now())
	if err := b.Claim(ctx, newJID); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, newJID); !errors.Is(err, ErrJIDTaken) {
		t.Fatalf("second claim of %s: %v", newJID, err)
	}
	if err := b.SaveJob(ctx, job.Job{JID: newJID, Fun: "cmd.run", Minions: []string{"y"}}); err != nil {
		t.Fatal(err)
	}
	list, err := a.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, j := range list {
		pos[j.JID] = i
		if i > 0 && list[i-1].JID < j.JID {
			t.Fatalf("list not newest first: %s before %s", list[i-1].JID, j.JID)
		}
	}
	if _, ok := pos[oldJID]; !ok {
		t.Fatalf("old job not listed: %v", pos)
	}
	if l1, _ := a.List(ctx, 1); len(l1) != 1 || l1[0].JID < newJID {
		t.Fatalf("limit 1: %v", l1)
	}
	n, err := b.Prune(ctx, old.Add(time.Hour))
	if err != nil || n < 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if _, _, err := a.Get(ctx, oldJID); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("pruned job still there: %v", err)
	}
	if _, _, err := a.Get(ctx, newJID); err != nil {
		t.Fatalf("new job pruned: %v", err)
	}
}
