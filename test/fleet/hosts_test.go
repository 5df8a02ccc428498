package fleet

import (
	"strings"
	"testing"
)

// The story judges brine's hosts files with its own parser; these cases
// pin what that parser accepts and refuses, since a lenient judge would
// pass half-written files.
func TestParseHosts(t *testing.T) {
	for _, c := range []struct {
		name, in string
		err      string // substring; "" means valid
		names    map[string]string
	}{
		{"empty", "", "", map[string]string{}},
		{"comments and blanks", "# c\n\n   \n", "", map[string]string{}},
		{"entries", "127.0.0.1\tlocalhost web1\n198.18.0.13 db1 # primary\n", "",
			map[string]string{"localhost": "127.0.0.1", "web1": "127.0.0.1", "db1": "198.18.0.13"}},
		{"ipv6", "::1 ip6-localhost\n", "", map[string]string{"ip6-localhost": "::1"}},
		{"truncated mid-line", "127.0.0.1 localhost\n198.18.0.", "final newline", nil},
		{"truncated address", "127.0.0.1 localhost\n198.18.0. db1\n", "line 2", nil},
		{"address without names", "127.0.0.1 localhost\n198.18.0.13\n", "without names", nil},
		{"name first", "db1 198.18.0.13\n", "line 1", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			hf, err := parseHosts(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(hf.byName) != len(c.names) {
				t.Fatalf("names %v, want %v", hf.byName, c.names)
			}
			for n, a := range c.names {
				if got := hf.byName[n]; len(got) != 1 || got[0] != a {
					t.Errorf("%s: %v, want %s", n, got, a)
				}
			}
		})
	}
}

func TestCheckHosts(t *testing.T) {
	want := map[string]string{"localhost": "127.0.0.1", "web1": "127.0.0.1", "db1": "198.18.0.13"}
	good := originalHosts("web1") + "198.18.0.13 db1\n"
	good = strings.Replace(good, "localhost\n", "localhost web1\n", 1)
	for _, c := range []struct {
		name, in, err string
	}{
		{"exact", good, ""},
		{"comment lost", strings.SplitN(good, "\n", 2)[1], "original first line"},
		{"wrong address", strings.Replace(good, "198.18.0.13", "198.18.0.99", 1), "db1"},
		{"listed twice", good + "198.18.0.13 db1\n", "db1"},
		{"a stranger", good + "198.18.0.16 stage1\n", "unexpected names [stage1]"},
		{"one missing", strings.Replace(good, "198.18.0.13 db1\n", "", 1), "db1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkHosts("web1", c.in, want)
			if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err %v, want %q", err, c.err)
			}
		})
	}
}

func FuzzParseHosts(f *testing.F) {
	f.Add(originalHosts("web1") + "198.18.0.13\tdb1 db1.prod\n")
	f.Add("::1 a\n#\n\n")
	f.Add("1.2.3.4")
	f.Fuzz(func(t *testing.T, in string) {
		hf, err := parseHosts(in)
		if err != nil {
			return
		}
		// Whatever it accepts, every name maps to something that parsed.
		for n, addrs := range hf.byName {
			if n == "" || len(addrs) == 0 {
				t.Fatalf("accepted %q with name %q -> %v", in, n, addrs)
			}
		}
	})
}
