package netns

import (
	"fmt"
	"testing"
)

func TestParseIPOutput(t *testing.T) {
	for _, c := range []struct {
		name, links, addrs string
		wantLinks          string
		wantAddrs          string
	}{
		{"empty", "", "", "[]", "[]"},
		{"real output",
			"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n" +
				"190: bf3d08-br: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n" +
				"191: bf3d08-web1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master bf3d08-br link-netns bf3d08-web1\n",
			"2: eth0    inet 198.18.0.15/24 scope global eth0\\       valid_lft forever preferred_lft forever\n" +
				"2: eth0    inet 198.18.0.23/24 scope global secondary eth0\\       valid_lft forever\n",
			"[lo bf3d08-br bf3d08-web1]", "[198.18.0.15 198.18.0.23]"},
		{"garbage", "link/ether aa:bb\n: :\n", "inet\ninet nope\n", "[]", "[]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := fmt.Sprint(nonNil(parseLinks(c.links))); got != c.wantLinks {
				t.Errorf("links %s, want %s", got, c.wantLinks)
			}
			if got := fmt.Sprint(parseInet(c.addrs)); got != c.wantAddrs {
				t.Errorf("addrs %s, want %s", got, c.wantAddrs)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// FuzzParseIPOutput: whatever ip prints, the parsers return names without
// separators and only valid addresses, and never panic.
func FuzzParseIPOutput(f *testing.F) {
	f.Add("191: bf3d08-web1@if2: <UP> mtu 1500\n", "2: eth0 inet 198.18.0.15/24 scope global eth0\n")
	f.Add(":\n1:", "inet")
	f.Fuzz(func(t *testing.T, links, addrs string) {
		for _, n := range parseLinks(links) {
			if n == "" || n[len(n)-1] == ':' {
				t.Fatalf("link name %q from %q", n, links)
			}
		}
		for _, a := range parseInet(addrs) {
			if !a.IsValid() {
				t.Fatalf("invalid address from %q", addrs)
			}
		}
	})
}
