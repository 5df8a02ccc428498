package mine

import (
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
)

// The single-dump address reader must see exactly the addresses the
// portable per-interface reader sees.
func TestAddrLinesMatchesPerInterface(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	fast, err := addrLines(ifs)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := addrLinesPerInterface(ifs)
	if err != nil {
		t.Fatal(err)
	}
	var fastIPs, slowIPs []string
	seen := map[string]bool{}
	for _, l := range fast { // "index family type/plen hexaddr"
		f := strings.Fields(l)
		raw, err := hex.DecodeString(f[3])
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		k := f[0] + " " + net.IP(raw).String()
		if !seen[k] { // IFA_ADDRESS and IFA_LOCAL repeat the address for IPv4
			seen[k] = true
			fastIPs = append(fastIPs, k)
		}
	}
	for _, l := range slow { // "index ip/plen"
		f := strings.Fields(l)
		ip, _, err := net.ParseCIDR(f[1])
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		slowIPs = append(slowIPs, fmt.Sprintf("%s %s", f[0], ip))
	}
	sort.Strings(fastIPs)
	sort.Strings(slowIPs)
	if strings.Join(fastIPs, ",") != strings.Join(slowIPs, ",") {
		t.Fatalf("netlink dump sees %v, per-interface sees %v", fastIPs, slowIPs)
	}
	if len(fastIPs) == 0 {
		t.Fatal("no addresses at all; loopback should have one")
	}
}

func TestFingerprintStable(t *testing.T) {
	a, err := hostFingerprint()
	if err != nil {
		t.Fatal(err)
	}
	b, err := hostFingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("fingerprint changed with nothing changing:\n%s\n---\n%s", a, b)
	}
	if !strings.Contains(a, "127.0.0.1") && !strings.Contains(a, "7f000001") {
		t.Fatalf("fingerprint lacks loopback address:\n%s", a)
	}
}
