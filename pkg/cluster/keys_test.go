package cluster

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/pki"
)

func testPub(n byte) ed25519.PublicKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

func openKeys(t *testing.T, n *Node, onChange func(KeyChange)) *KeyStore {
	t.Helper()
	s, err := OpenKeyStore(tctx(t), n, onChange)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// errClass makes errors comparable across stores.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, fs.ErrNotExist):
		return "not-exist"
	case errors.Is(err, fs.ErrInvalid):
		return "invalid"
	}
	return "other: " + err.Error()
}

// keysOf renders a List restricted to ids with prefix, for comparison.
func keysOf(ks []pki.Key, prefix string) string {
	var b strings.Builder
	for _, k := range ks {
		if strings.HasPrefix(k.ID, prefix) {
			fmt.Fprintf(&b, "%s:%s:%s ", k.State, k.ID, k.Fingerprint[:8])
		}
	}
	return b.String()
}

// TestKeyStoreMatchesFileKeyStore runs the same salt-key story on the
// file store (the single-master reference) and on the cluster store, and
// wants the same answer at every step.
func TestKeyStoreMatchesFileKeyStore(t *testing.T) {
	ref, err := pki.OpenFileKeyStore(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	cs := openKeys(t, shared[0], nil)
	ctx := tctx(t)
	p := "diff-"
	type op struct {
		do   string // admit, auto, accept, reject, delete
		id   string
		pub  byte
		want string // expected outcome on both: state or error class
	}
	steps := []op{
		{"admit", p + "web1", 1, "pending"},
		{"admit", p + "web1", 1, "pending"},
		{"admit", p + "web1", 2, "denied"}, // another key for a pending id
		{"accept", p + "web1", 0, "ok"},
		{"admit", p + "web1", 1, "accepted"},
		{"admit", p + "web1", 3, "denied"}, // impostor of an accepted id
		{"auto", p + "web1", 4, "denied"},  // auto_accept does not help it
		{"auto", p + "db1", 5, "accepted"},
		{"admit", p + "db1", 5, "accepted"},
		{"reject", p + "db1", 0, "ok"},
		{"admit", p + "db1", 5, "rejected"},
		{"auto", p + "db1", 6, "rejected"}, // rejected wins whatever the key
		{"accept", p + "db1", 0, "ok"},     // --include-rejected
		{"admit", p + "db1", 5, "accepted"},
		{"admit", p + "new1", 7, "pending"},
		{"auto", p + "new1", 7, "accepted"}, // pending, then autosigned
		{"reject", p + "ghost", 0, "not-exist"},
		{"accept", p + "ghost", 0, "not-exist"},
		{"delete", p + "ghost", 0, "not-exist"},
		{"delete", p + "web1", 0, "ok"}, // accepted and denied both go
		{"admit", p + "web1", 3, "pending"},
		{"admit", "../etc", 1, "invalid"},
		{"admit", ".hidden", 1, "invalid"},
		{"accept", "", 0, "invalid"},
		{"admit", strings.Repeat("x", 300), 1, "invalid"},
	}
	for i, st := range steps {
		var got [2]string
		for j, s := range []pki.KeyStore{ref, cs} {
			var err error
			var state pki.KeyState
			switch st.do {
			case "admit", "auto":
				state, err = s.Admit(ctx, st.id, testPub(st.pub), st.do == "auto")
			case "accept":
				_, err = s.Accept(ctx, st.id)
			case "reject":
				_, err = s.Reject(ctx, st.id)
			case "delete":
				err = s.Delete(ctx, st.id)
			}
			got[j] = errClass(err)
			if err == nil && state != "" {
				got[j] = string(state)
			}
		}
		if got[0] != st.want || got[1] != st.want {
			t.Fatalf("step %d %s %q: file store %s, cluster store %s, want %s", i, st.do, st.id, got[0], got[1], st.want)
		}
		rl, _ := ref.List(ctx)
		cl, _ := cs.List(ctx)
		if a, b := keysOf(rl, p), keysOf(cl, p); a != b {
			t.Fatalf("step %d %s %q: lists differ\nfile:    %s\ncluster: %s", i, st.do, st.id, a, b)
		}
		for _, id := range []string{p + "web1", p + "db1"} {
			a, _ := ref.Lookup(ctx, id)
			b, _ := cs.Lookup(ctx, id)
			if keysOf(a, p) != keysOf(b, p) {
				t.Fatalf("step %d: Lookup(%s): file %s, cluster %s", i, id, keysOf(a, p), keysOf(b, p))
			}
		}
	}
}

// TestKeysAcrossMasters: a decision on one master holds on the others,
// and they are told.
func TestKeysAcrossMasters(t *testing.T) {
	ctx := tctx(t)
	var mu sync.Mutex
	var seenOnC []KeyChange
	a := openKeys(t, shared[0], nil)
	b := openKeys(t, shared[1], nil)
	c := openKeys(t, shared[2], func(ch KeyChange) {
		if strings.HasPrefix(ch.ID, "across-") {
			mu.Lock()
			seenOnC = append(seenOnC, ch)
			mu.Unlock()
		}
	})

	if st, err := a.Admit(ctx, "across-web", testPub(10), false); err != nil || st != pki.Pending {
		t.Fatalf("admit on A: %v %v", st, err)
	}
	if _, err := b.Accept(ctx, "across-web"); err != nil {
		t.Fatalf("accept on B: %v", err)
	}
	// A decides with what B wrote: the same key is in, another is denied.
	if st, err := a.Admit(ctx, "across-web", testPub(10), false); err != nil || st != pki.Accepted {
		t.Fatalf("admit on A after accept on B: %v %v", st, err)
	}
	if st, err := c.Admit(ctx, "across-web", testPub(11), true); err != nil || st != pki.Denied {
		t.Fatalf("impostor on C: %v %v", st, err)
	}
	eventually(t, "C told of the acceptance", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ch := range seenOnC {
			if Has(ch.After, pki.Accepted) && !Has(ch.Before, pki.Accepted) {
				return true
			}
		}
		return false
	})
	eventually(t, "A's list shows accepted and denied", 5*time.Second, func() bool {
		l, _ := a.List(ctx)
		return keysOf(l, "across-") == fmt.Sprintf("accepted:across-web:%s denied:across-web:%s ", pki.Fingerprint(testPub(10))[:8], pki.Fingerprint(testPub(11))[:8])
	})
	if err := c.Delete(ctx, "across-web"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B's list forgets the deleted id", 5*time.Second, func() bool {
		l, _ := b.List(ctx)
		return keysOf(l, "across-") == ""
	})
}

// TestAdmitRaceOneWinner: three masters admit the same id with three
// different keys at once (auto_accept). Exactly one key is accepted; the
// others are denied, never a second accepted key.
func TestAdmitRaceOneWinner(t *testing.T) {
	ctx := tctx(t)
	stores := []*KeyStore{openKeys(t, shared[0], nil), openKeys(t, shared[1], nil), openKeys(t, shared[2], nil)}
	for round := 0; round < 5; round++ {
		id := fmt.Sprintf("race-%d", round)
		states := make([]pki.KeyState, 3)
		errs := make([]error, 3)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				states[i], errs[i] = s.Admit(ctx, id, testPub(byte(20+i)), true)
			}()
		}
		close(start)
		wg.Wait()
		accepted := 0
		for i := range states {
			if errs[i] != nil {
				t.Fatalf("%s: admit %d: %v", id, i, errs[i])
			}
			if states[i] == pki.Accepted {
				accepted++
			} else if states[i] != pki.Denied {
				t.Fatalf("%s: admit %d: %s", id, i, states[i])
			}
		}
		keys, err := stores[0].Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if accepted != 1 || len(keys) != 2 || keys[0].State != pki.Accepted || keys[1].State != pki.Denied {
			t.Fatalf("%s: %d accepted, keys %v", id, accepted, keys)
		}
	}
}

func TestKeyImport(t *testing.T) {
	ctx := tctx(t)
	ref, err := pki.OpenFileKeyStore(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	ref.Admit(ctx, "imp-a", testPub(30), true)
	ref.Admit(ctx, "imp-b", testPub(31), false)
	ref.Admit(ctx, "imp-a", testPub(32), false) // denied
	cs := openKeys(t, shared[1], nil)
	// The cluster already knows imp-b otherwise: the cluster wins.
	if _, err := cs.Admit(ctx, "imp-b", testPub(33), true); err != nil {
		t.Fatal(err)
	}
	n, err := cs.Import(ctx, ref)
	if err != nil || n != 1 {
		t.Fatalf("import: %d %v", n, err)
	}
	l, _ := cs.List(ctx)
	want := fmt.Sprintf("accepted:imp-a:%s accepted:imp-b:%s denied:imp-a:%s ",
		pki.Fingerprint(testPub(30))[:8], pki.Fingerprint(testPub(33))[:8], pki.Fingerprint(testPub(32))[:8])
	if got := keysOf(l, "imp-"); got != want {
		t.Fatalf("after import: %s, want %s", got, want)
	}
}
