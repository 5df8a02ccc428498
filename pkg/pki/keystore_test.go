package pki

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// ksTestKey derives a deterministic key so failures are reproducible.
func ksTestKey(n byte) ed25519.PublicKey {
	seed := bytes.Repeat([]byte{n}, ed25519.SeedSize)
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

var (
	keyA = ksTestKey(1) // the real minion
	keyB = ksTestKey(2) // an impostor
)

// ksPlant writes a key file straight into Salt's layout, bypassing the
// store, so the tests also prove the store reads what Salt's layout holds.
func ksPlant(t *testing.T, root string, st KeyState, id string, pub ed25519.PublicKey) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, ksDir(st), id)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ksOnDisk reads the layout back without the store: state -> key.
func ksOnDisk(t *testing.T, root, id string) map[KeyState]ed25519.PublicKey {
	t.Helper()
	got := map[KeyState]ed25519.PublicKey{}
	for _, st := range ksStates {
		p := filepath.Join(root, st.dir, id)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "PUBLIC KEY" {
			t.Fatalf("%s: not a PEM PUBLIC KEY: %q", p, b)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		got[st.state] = k.(ed25519.PublicKey)
	}
	return got
}

func ksOpen(t *testing.T) (*FileKeyStore, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pki")
	s, err := OpenFileKeyStore(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func TestFingerprint(t *testing.T) {
	// sha256("") is a published constant; Salt prints fingers this way.
	const empty = "e3:b0:c4:42:98:fc:1c:14:9a:fb:f4:c8:99:6f:b9:24:27:ae:41:e4:64:9b:93:4c:a4:95:99:1b:78:52:b8:55"
	if got := Fingerprint(nil); got != empty {
		t.Errorf("Fingerprint(nil) = %s, want %s", got, empty)
	}
	if Fingerprint(keyA) == Fingerprint(keyB) {
		t.Error("different keys share a fingerprint")
	}
	if n := len(Fingerprint(keyA)); n != 32*3-1 {
		t.Errorf("fingerprint length %d, want 95", n)
	}
}

func TestOpenCreatesSaltLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(filepath.Join(root, "minions"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileKeyStore(root); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", "minions", "minions_pre", "minions_rejected", "minions_denied"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, want a 0700 directory", d, fi.Mode())
		}
	}
}

func TestAdmit(t *testing.T) {
	type planted map[KeyState]ed25519.PublicKey
	tests := []struct {
		name   string
		before planted
		pub    ed25519.PublicKey
		auto   bool
		want   KeyState
		after  planted
	}{
		{"unknown becomes pending", nil, keyA, false, Pending, planted{Pending: keyA}},
		{"unknown auto-accepted", nil, keyA, true, Accepted, planted{Accepted: keyA}},
		{"accepted same key", planted{Accepted: keyA}, keyA, false, Accepted, planted{Accepted: keyA}},
		{"impersonating accepted id is denied", planted{Accepted: keyA}, keyB, false, Denied, planted{Accepted: keyA, Denied: keyB}},
		{"auto_accept does not let an impostor in", planted{Accepted: keyA}, keyB, true, Denied, planted{Accepted: keyA, Denied: keyB}},
		{"newer impostor replaces denied record", planted{Accepted: keyA, Denied: ksTestKey(3)}, keyB, false, Denied, planted{Accepted: keyA, Denied: keyB}},
		{"accepted with denied record, real key", planted{Accepted: keyA, Denied: keyB}, keyA, false, Accepted, planted{Accepted: keyA, Denied: keyB}},
		{"rejected same key", planted{Rejected: keyA}, keyA, false, Rejected, planted{Rejected: keyA}},
		{"rejected wins over auto_accept", planted{Rejected: keyA}, keyA, true, Rejected, planted{Rejected: keyA}},
		{"rejected id, other key: still rejected, nothing recorded", planted{Rejected: keyA}, keyB, false, Rejected, planted{Rejected: keyA}},
		{"pending same key stays pending", planted{Pending: keyA}, keyA, false, Pending, planted{Pending: keyA}},
		{"pending same key auto-accepted", planted{Pending: keyA}, keyA, true, Accepted, planted{Accepted: keyA}},
		{"pending different key is denied", planted{Pending: keyA}, keyB, false, Denied, planted{Pending: keyA, Denied: keyB}},
		{"pending different key denied under auto_accept", planted{Pending: keyA}, keyB, true, Denied, planted{Pending: keyA, Denied: keyB}},
		{"only a denied record: new key goes pending", planted{Denied: keyB}, keyA, false, Pending, planted{Pending: keyA, Denied: keyB}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, root := ksOpen(t)
			for st, k := range tc.before {
				ksPlant(t, root, st, "web01", k)
			}
			got, err := s.Admit(t.Context(), "web01", tc.pub, tc.auto)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Admit = %s, want %s", got, tc.want)
			}
			disk := ksOnDisk(t, root, "web01")
			if len(disk) != len(tc.after) {
				t.Errorf("on disk %v, want %v", ksStatesOf(disk), ksStatesOf(tc.after))
			}
			for st, want := range tc.after {
				if !want.Equal(disk[st]) {
					t.Errorf("%s key on disk = %x, want %x", st, disk[st], want)
				}
			}
			// Lookup must agree with the disk.
			keys, err := s.Lookup(t.Context(), "web01")
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tc.after) {
				t.Errorf("Lookup returned %d keys, want %d", len(keys), len(tc.after))
			}
			for _, k := range keys {
				if !k.PublicKey.Equal(tc.after[k.State]) || k.ID != "web01" || k.Fingerprint != Fingerprint(k.PublicKey) || k.Updated.IsZero() {
					t.Errorf("Lookup key %+v disagrees with disk", k)
				}
			}
		})
	}
}

func ksStatesOf(m map[KeyState]ed25519.PublicKey) []KeyState {
	var out []KeyState
	for st := range m {
		out = append(out, st)
	}
	slices.Sort(out)
	return out
}

func TestAcceptRejectDelete(t *testing.T) {
	type planted map[KeyState]ed25519.PublicKey
	tests := []struct {
		name    string
		before  planted
		op      string
		wantErr error
		after   planted
	}{
		{"accept pending", planted{Pending: keyA}, "accept", nil, planted{Accepted: keyA}},
		{"accept rejected", planted{Rejected: keyA}, "accept", nil, planted{Accepted: keyA}},
		{"accept keeps denied record", planted{Pending: keyA, Denied: keyB}, "accept", nil, planted{Accepted: keyA, Denied: keyB}},
		{"accept already accepted", planted{Accepted: keyA}, "accept", fs.ErrNotExist, planted{Accepted: keyA}},
		{"accept denied only", planted{Denied: keyB}, "accept", fs.ErrNotExist, planted{Denied: keyB}},
		{"accept unknown", nil, "accept", fs.ErrNotExist, nil},
		{"reject pending", planted{Pending: keyA}, "reject", nil, planted{Rejected: keyA}},
		{"reject accepted", planted{Accepted: keyA, Denied: keyB}, "reject", nil, planted{Rejected: keyA, Denied: keyB}},
		{"reject already rejected", planted{Rejected: keyA}, "reject", fs.ErrNotExist, planted{Rejected: keyA}},
		{"reject unknown", nil, "reject", fs.ErrNotExist, nil},
		{"delete accepted and denied", planted{Accepted: keyA, Denied: keyB}, "delete", nil, nil},
		{"delete pending", planted{Pending: keyA}, "delete", nil, nil},
		{"delete rejected", planted{Rejected: keyA}, "delete", nil, nil},
		{"delete unknown", nil, "delete", fs.ErrNotExist, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, root := ksOpen(t)
			for st, k := range tc.before {
				ksPlant(t, root, st, "db1", k)
			}
			var (
				k   Key
				err error
			)
			switch tc.op {
			case "accept":
				k, err = s.Accept(t.Context(), "db1")
			case "reject":
				k, err = s.Reject(t.Context(), "db1")
			case "delete":
				err = s.Delete(t.Context(), "db1")
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), `"db1"`) {
					t.Errorf("error %q does not name the minion", err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if tc.op != "delete" {
				want := map[string]KeyState{"accept": Accepted, "reject": Rejected}[tc.op]
				if k.State != want || !k.PublicKey.Equal(keyA) || k.ID != "db1" {
					t.Errorf("returned key %+v, want %s with keyA", k, want)
				}
			}
			disk := ksOnDisk(t, root, "db1")
			if len(disk) != len(tc.after) {
				t.Errorf("on disk %v, want %v", ksStatesOf(disk), ksStatesOf(tc.after))
			}
			for st, want := range tc.after {
				if !want.Equal(disk[st]) {
					t.Errorf("%s key = %x, want %x", st, disk[st], want)
				}
			}
		})
	}
}

func TestInvalidIDs(t *testing.T) {
	bad := []string{
		"", ".", "..", ".hidden", "../etc/passwd", "a/b", "/abs", "a/../b", "web..01",
		"nul\x00byte", "tab\there", "new\nline", "esc\x1b[31m", "del\x7f", "c1\u0085ctl",
		`back\slash`, "\xff\xfe", strings.Repeat("x", 251),
	}
	s, root := ksOpen(t)
	ctx := t.Context()
	for _, id := range bad {
		t.Run(strconv.Quote(id), func(t *testing.T) {
			ops := map[string]error{}
			_, ops["lookup"] = s.Lookup(ctx, id)
			_, ops["admit"] = s.Admit(ctx, id, keyA, true)
			_, ops["accept"] = s.Accept(ctx, id)
			_, ops["reject"] = s.Reject(ctx, id)
			ops["delete"] = s.Delete(ctx, id)
			for op, err := range ops {
				if !errors.Is(err, fs.ErrInvalid) {
					t.Errorf("%s: err = %v, want fs.ErrInvalid", op, err)
					continue
				}
				if id != "" && !strings.Contains(err.Error(), strconv.Quote(id)) {
					t.Errorf("%s: error %q does not name the id", op, err)
				}
			}
		})
	}
	// Nothing may have escaped into, or been written under, the store.
	var files []string
	filepath.WalkDir(filepath.Dir(root), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("invalid ids left files: %v", files)
	}

	good := []string{"web01", "web-01.example.com", "a.b", "x", "minion_ü", "with space", strings.Repeat("x", 250)}
	for _, id := range good {
		if st, err := s.Admit(ctx, id, keyA, false); err != nil || st != Pending {
			t.Errorf("Admit(%q) = %s, %v; want pending", id, st, err)
		}
	}
}

func TestAdmitRefusesBadKey(t *testing.T) {
	s, _ := ksOpen(t)
	for _, pub := range []ed25519.PublicKey{nil, keyA[:31], append(slices.Clone(keyA), 0)} {
		if _, err := s.Admit(t.Context(), "m1", pub, true); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Admit with %d-byte key: err = %v, want fs.ErrInvalid", len(pub), err)
		}
	}
}

func TestListOrderAndReopen(t *testing.T) {
	s, root := ksOpen(t)
	ctx := t.Context()
	admit := func(id string, pub ed25519.PublicKey, auto bool) {
		t.Helper()
		if _, err := s.Admit(ctx, id, pub, auto); err != nil {
			t.Fatal(err)
		}
	}
	admit("zeta", keyA, true)
	admit("alpha", keyA, true)
	admit("alpha", keyB, false) // impostor -> denied
	admit("mid", keyA, false)
	admit("beta", keyA, false)
	admit("gamma", keyA, false)
	if _, err := s.Reject(ctx, "gamma"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accept(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	// A crash leftover and a directory must not show up as minions.
	if err := os.WriteFile(filepath.Join(root, "minions", ".tmp-123"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "minions_pre", "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}

	want := []string{"accepted/alpha", "accepted/beta", "accepted/zeta", "denied/alpha", "pending/mid", "rejected/gamma"}
	list := func(s KeyStore) []Key {
		t.Helper()
		keys, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, string(k.State)+"/"+k.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List = %v, want %v", got, want)
		}
		return keys
	}
	before := list(s)

	// A master restart: a fresh store over the same directory.
	s2, err := OpenFileKeyStore(root)
	if err != nil {
		t.Fatal(err)
	}
	after := list(s2)
	for i := range before {
		a, b := before[i], after[i]
		if !a.PublicKey.Equal(b.PublicKey) || a.Fingerprint != b.Fingerprint || !a.Updated.Equal(b.Updated) {
			t.Errorf("key %d changed across reopen: %+v vs %+v", i, a, b)
		}
	}
	if before[3].Fingerprint != Fingerprint(keyB) {
		t.Errorf("denied alpha fingerprint %s, want the impostor's", before[3].Fingerprint)
	}
	if st, err := s2.Admit(ctx, "alpha", keyA, false); err != nil || st != Accepted {
		t.Errorf("reopened Admit(alpha) = %s, %v", st, err)
	}
	if st, err := s2.Admit(ctx, "gamma", keyA, true); err != nil || st != Rejected {
		t.Errorf("reopened Admit(gamma) = %s, %v", st, err)
	}
}

func TestCorruptKeyFile(t *testing.T) {
	s, root := ksOpen(t)
	p := filepath.Join(root, "minions", "broken")
	if err := os.WriteFile(p, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Lookup(t.Context(), "broken")
	if !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Errorf("Lookup err = %v, want fs.ErrInvalid naming %s", err, p)
	}
	if _, err := s.Admit(t.Context(), "broken", keyA, true); err == nil {
		t.Error("Admit over a corrupt accepted key succeeded")
	}
	if _, err := s.List(t.Context()); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("List err = %v, want one naming %s", err, p)
	}
	// The operator's way out: delete does not need to parse the key.
	if err := s.Delete(t.Context(), "broken"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAdmitAccept races the real minion reconnecting, an
// impostor reconnecting with auto_accept on, and an operator flipping the
// key between accepted and rejected. Without the store's lock an Admit can
// look while the key is mid-move, find nothing, and admit the impostor.
func TestConcurrentAdmitAccept(t *testing.T) {
	s, root := ksOpen(t)
	ctx := t.Context()
	const ids, rounds = 8, 60
	for i := range ids {
		if _, err := s.Admit(ctx, fmt.Sprintf("m%02d", i), keyA, false); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, ids*rounds*4)
	for i := range ids {
		id := fmt.Sprintf("m%02d", i)
		wg.Add(3)
		go func() {
			defer wg.Done()
			for range rounds {
				st, err := s.Admit(ctx, id, keyA, false)
				if err != nil || st == Denied {
					errs <- fmt.Errorf("real %s: %s, %v", id, st, err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range rounds {
				st, err := s.Admit(ctx, id, keyB, true)
				if err != nil || (st != Denied && st != Rejected) {
					errs <- fmt.Errorf("impostor %s: %s, %v", id, st, err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range rounds {
				if _, err := s.Accept(ctx, id); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs <- fmt.Errorf("accept %s: %v", id, err)
				}
				if _, err := s.Reject(ctx, id); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs <- fmt.Errorf("reject %s: %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range ids {
		id := fmt.Sprintf("m%02d", i)
		if _, err := s.Accept(ctx, id); err != nil {
			t.Fatalf("final accept %s: %v", id, err)
		}
		// Whether the impostor ever met an unrejected key is up to the
		// scheduler; one last attempt makes the denied record certain.
		if st, err := s.Admit(ctx, id, keyB, true); err != nil || st != Denied {
			t.Fatalf("final impostor %s: %s, %v", id, st, err)
		}
		disk := ksOnDisk(t, root, id)
		if len(disk) != 2 || !disk[Accepted].Equal(keyA) || !disk[Denied].Equal(keyB) {
			t.Errorf("%s on disk: %v, want accepted=real, denied=impostor", id, ksStatesOf(disk))
		}
	}
}

func TestContextCancelled(t *testing.T) {
	s, _ := ksOpen(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Admit(ctx, "m", keyA, true); !errors.Is(err, context.Canceled) {
		t.Errorf("Admit on cancelled ctx: %v", err)
	}
	if keys, _ := s.Lookup(t.Context(), "m"); len(keys) != 0 {
		t.Errorf("cancelled Admit recorded %v", keys)
	}
}

func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"web01", "", ".", "..", "a/b", "a\x00b", "..\\x", "ü", "a..b", "\u2028", "\xc0\xaf", strings.Repeat("y", 255)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ksValidateID(id)
		if err != nil {
			if !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("error does not wrap fs.ErrInvalid: %v", err)
			}
			if id != "" && !strings.Contains(err.Error(), strconv.Quote(id)) {
				t.Fatalf("error %q does not name %q", err, id)
			}
			return
		}
		// A valid id must be exactly one path element of the store dir.
		const root = "/srv/pki/minions"
		p := filepath.Join(root, id)
		if filepath.Dir(p) != root || filepath.Base(p) != id {
			t.Fatalf("id %q escapes or is rewritten: %s", id, p)
		}
		if len(id) == 0 || len(id) > 255 || id[0] == '.' {
			t.Fatalf("accepted %q", id)
		}
		for _, r := range id {
			if unicode.IsControl(r) || r == '/' {
				t.Fatalf("accepted %q with %U", id, r)
			}
		}
	})
}

func FuzzDecodeKeyFile(f *testing.F) {
	good, _ := ksEncode(keyA)
	f.Add(good)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := ksDecode("fuzz", b)
		if err != nil {
			if !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "fuzz") {
				t.Fatalf("unhelpful error %v", err)
			}
			return
		}
		if len(pub) != ed25519.PublicKeySize {
			t.Fatalf("decoded %d-byte key", len(pub))
		}
		again, err := ksEncode(pub)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ksDecode("again", again); err != nil || !back.Equal(pub) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// TestConcurrentFirstContact races enrolments of new ids, whose key files
// are written outside the store's lock: two different keys claiming one
// new id at once, with auto-accept, must end with one accepted and the
// other denied, never both accepted; every id of a crowd of new ones is
// recorded; no temp file is left behind.
func TestConcurrentFirstContact(t *testing.T) {
	cases := []struct {
		name       string
		autoAccept bool
		winner     KeyState
	}{
		{"auto-accept", true, Accepted},
		{"pending", false, Pending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, root := ksOpen(t)
			ctx := t.Context()
			const ids = 40
			var wg sync.WaitGroup
			states := make([][2]KeyState, ids)
			for i := range ids {
				id := fmt.Sprintf("new%02d", i)
				for j, k := range []ed25519.PublicKey{keyA, keyB} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						st, err := s.Admit(ctx, id, k, tc.autoAccept)
						if err != nil {
							t.Errorf("%s key %d: %v", id, j, err)
						}
						states[i][j] = st
					}()
				}
			}
			wg.Wait()
			for i := range ids {
				id := fmt.Sprintf("new%02d", i)
				got := states[i]
				won := -1
				switch {
				case got[0] == tc.winner && got[1] == Denied:
					won = 0
				case got[1] == tc.winner && got[0] == Denied:
					won = 1
				default:
					t.Fatalf("%s: states %v, want one %s and one denied", id, got, tc.winner)
				}
				disk := ksOnDisk(t, root, id)
				want := []ed25519.PublicKey{keyA, keyB}
				if len(disk) != 2 || !disk[tc.winner].Equal(want[won]) || !disk[Denied].Equal(want[1-won]) {
					t.Fatalf("%s on disk: %v, want %s = the winner's key, denied = the other", id, ksStatesOf(disk), tc.winner)
				}
			}
			for _, st := range ksStates {
				entries, err := os.ReadDir(filepath.Join(root, st.dir))
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".") {
						t.Errorf("temp file left in %s: %s", st.dir, e.Name())
					}
				}
			}
		})
	}
}
