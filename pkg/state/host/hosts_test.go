package host

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestEditGolden(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		edits []Edit
		want  string // JSON of the last edit's Changes.Map()
	}{
		{"basic_add_new_ip", "basic.in", []Edit{{Name: "web", IPs: []string{"10.0.0.1"}}}, `{"added":{"10.0.0.1":["web"]}}`},
		{"basic_alias_existing_ip", "basic.in", []Edit{{Name: "debian-alias", IPs: []string{"127.0.1.1"}}}, `{"added":{"127.0.1.1":["debian-alias"]}}`},
		{"basic_ipv6_and_v4", "basic.in", []Edit{{Name: "api", IPs: []string{"2001:db8::10", "10.0.0.3"}}}, `{"added":{"10.0.0.3":["api"],"2001:db8::10":["api"]}}`},
		{"basic_already_present", "basic.in", []Edit{{Name: "localhost", IPs: []string{"127.0.0.1"}}}, `{}`},
		{"basic_ipv6_equal_spelling", "basic.in", []Edit{{Name: "ip6-loopback", IPs: []string{"0:0:0:0:0:0:0:1"}}}, `{}`},
		{"basic_case_insensitive", "basic.in", []Edit{{Name: "LOCALHOST", IPs: []string{"127.0.0.1"}}}, `{}`},
		{"basic_absent_alias", "basic.in", []Edit{{Absent: true, Name: "ip6-localhost", IPs: []string{"::1"}}}, `{"removed":{"::1":["ip6-localhost"]}}`},
		{"nonewline_add", "nonewline.in", []Edit{{Name: "cache", IPs: []string{"10.0.0.9"}}}, `{"added":{"10.0.0.9":["cache"]}}`},
		{"nonewline_alias_keeps_comment", "nonewline.in", []Edit{{Name: "mongo", IPs: []string{"10.0.0.5"}}}, `{"added":{"10.0.0.5":["mongo"]}}`},
		{"dups_clean", "dups.in", []Edit{{Name: "web", IPs: []string{"10.0.0.2"}, Clean: true}}, `{"removed":{"10.0.0.1":["web"]}}`},
		{"dups_clean_moves", "dups.in", []Edit{{Name: "web", IPs: []string{"10.0.0.9"}, Clean: true}}, `{"added":{"10.0.0.9":["web"]},"removed":{"10.0.0.1":["web"],"10.0.0.2":["web"]}}`},
		{"dups_absent_everywhere", "dups.in", []Edit{{Absent: true, Name: "web"}}, `{"removed":{"10.0.0.1":["web"],"10.0.0.2":["web"]}}`},
		{"dups_absent_one_ip", "dups.in", []Edit{{Absent: true, Name: "web", IPs: []string{"10.0.0.2"}}}, `{"removed":{"10.0.0.2":["web"]}}`},
		{"dups_absent_missing", "dups.in", []Edit{{Absent: true, Name: "nothere"}}, `{}`},
		{"crlf_add", "crlf.in", []Edit{{Name: "new", IPs: []string{"10.1.1.1"}}}, `{"added":{"10.1.1.1":["new"]}}`},
		{"crlf_alias", "crlf.in", []Edit{{Name: "win2", IPs: []string{"10.0.0.7"}}}, `{"added":{"10.0.0.7":["win2"]}}`},
		{"empty_file", "", []Edit{{Name: "first", IPs: []string{"fe80::1%eth0"}}}, `{"added":{"fe80::1%eth0":["first"]}}`},
		{"sequence", "basic.in", []Edit{
			{Name: "a", IPs: []string{"10.9.0.1"}},
			{Name: "b", IPs: []string{"10.9.0.1"}},
			{Absent: true, Name: "debian", IPs: []string{"127.0.1.1"}},
		}, `{"removed":{"127.0.1.1":["debian"]}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in []byte
			if c.in != "" {
				var err error
				if in, err = os.ReadFile(filepath.Join("testdata", c.in)); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(t.TempDir(), "hosts")
			if err := os.WriteFile(path, in, 0o644); err != nil {
				t.Fatal(err)
			}
			var last Changes
			for _, e := range c.edits {
				checked, err := Check(path, e)
				if err != nil {
					t.Fatal(err)
				}
				var uerr error
				last, uerr = Update(context.Background(), path, e)
				if uerr != nil {
					t.Fatal(uerr)
				}
				if a, b := js(t, checked.Map()), js(t, last.Map()); a != b {
					t.Fatalf("Check predicted %s, Update did %s", a, b)
				}
			}
			if got := js(t, last.Map()); got != c.want {
				t.Errorf("changes = %s, want %s", got, c.want)
			}
			out, _ := os.ReadFile(path)
			gp := filepath.Join("testdata", c.name+".golden")
			if *update {
				os.WriteFile(gp, out, 0o644)
			}
			want, err := os.ReadFile(gp)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output mismatch\n--- got\n%q\n--- want\n%q", out, want)
			}
			// Idempotent: every edit again changes nothing.
			for _, e := range c.edits[len(c.edits)-1:] {
				if ch, _ := Check(path, e); !ch.Empty() {
					t.Errorf("second run would change %v", ch.Map())
				}
			}
		})
	}
}

func js(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEditErrors(t *testing.T) {
	cases := []struct {
		e    Edit
		want string
	}{
		{Edit{Name: "web"}, "ip is required"},
		{Edit{Name: "web", IPs: []string{"10.0.0.300"}}, `ip "10.0.0.300"`},
		{Edit{Name: "bad name", IPs: []string{"10.0.0.1"}}, "invalid character"},
		{Edit{Name: "a#b", IPs: []string{"10.0.0.1"}}, "invalid character"},
		{Edit{Name: "-x", IPs: []string{"10.0.0.1"}}, "must start"},
		{Edit{Name: "", IPs: []string{"10.0.0.1"}}, "empty"},
		{Edit{Absent: true, Name: "x", IPs: []string{"nope"}}, `ip "nope"`},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "hosts")
		_, err := Update(context.Background(), path, c.e)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.e, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Errorf("%+v: error %q does not name the file", c.e, err)
		}
	}
}

// Many brine writers at once: the flock serializes them, each re-reads
// under the lock, so no entry is lost.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	seed := "# managed in part by brine\n127.0.0.1 localhost\n\n"
	os.WriteFile(path, []byte(seed), 0o644)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := Edit{Name: fmt.Sprintf("node%d", i), IPs: []string{fmt.Sprintf("10.0.%d.1", i%7), fmt.Sprintf("fd00::%x", i)}}
			if _, err := Update(context.Background(), path, e); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(out), seed) {
		t.Fatalf("seed lines changed:\n%s", out)
	}
	f := Parse(out)
	for i := 0; i < n; i++ {
		for _, ip := range []string{fmt.Sprintf("10.0.%d.1", i%7), fmt.Sprintf("fd00::%x", i)} {
			e := Edit{Name: fmt.Sprintf("node%d", i), IPs: []string{ip}}
			if ch, _ := f.Clone().Apply(e); !ch.Empty() {
				t.Errorf("node%d missing for %s", i, ip)
			}
		}
	}
	if _, err := os.Stat(LockPath(path)); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

func TestUpdateHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	unlock, err := lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Update(ctx, path, Edit{Name: "x", IPs: []string{"10.0.0.1"}}); err == nil {
		t.Fatal("Update went ahead while another writer held the lock")
	}
}

// FuzzParseHosts: parse then write is the identity, and an edit touching
// an IP the file lacks leaves every existing line byte for byte.
func FuzzParseHosts(f *testing.F) {
	for _, n := range []string{"basic.in", "nonewline.in", "dups.in", "crlf.in"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("\n\n# x\n10.0.0.1\thost\t \t# c \r\n::1 a b c"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p := Parse(in)
		if out := p.Bytes(); !bytes.Equal(out, in) {
			t.Fatalf("round trip changed the file:\n%q\n%q", in, out)
		}
		const ip = "192.0.2.77"
		if bytes.Contains(in, []byte("192.0.2.77")) {
			return
		}
		ch, err := p.Apply(Edit{Name: "brine-fuzz", IPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.Added[ip]) != 1 {
			t.Fatalf("changes %v", ch)
		}
		out := p.Bytes()
		if !bytes.HasPrefix(out, in) {
			t.Fatalf("existing lines changed:\n%q\n%q", in, out)
		}
		again := Parse(out)
		if !bytes.Equal(again.Bytes(), out) {
			t.Fatal("edited output does not round trip")
		}
		if ch, _ := again.Apply(Edit{Name: "brine-fuzz", IPs: []string{ip}}); !ch.Empty() {
			t.Fatalf("entry not found after adding it: %q", out)
		}
		if ch, _ := again.Apply(Edit{Absent: true, Name: "brine-fuzz", IPs: []string{ip}}); len(ch.Removed[ip]) != 1 {
			t.Fatalf("absent did not remove: %v", ch)
		}
		if !bytes.Equal(again.Bytes(), out[:len(out)-len(ip+"\tbrine-fuzz\n")]) && !bytes.Equal(again.Bytes(), out[:len(out)-len(ip+"\tbrine-fuzz\r\n")]) {
			t.Fatalf("absent left more than it found: %q", again.Bytes())
		}
	})
}
