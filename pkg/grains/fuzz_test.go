package grains

import (
	"encoding/binary"
	"os"
	"strings"
	"syscall"
	"testing"
)

func putNative32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }
func putNative16(b []byte, v uint16) { binary.NativeEndian.PutUint16(b, v) }

func FuzzParseOSRelease(f *testing.F) {
	for _, p := range []string{"debian12", "ubuntu2204", "rocky9", "derivative-quirks"} {
		b, err := os.ReadFile("testdata/os-release/" + p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("X=\"\\")
	f.Add("X='")
	f.Fuzz(func(t *testing.T, in string) {
		rel, _ := ParseOSRelease(strings.NewReader(in))
		for k := range rel {
			if !validOSReleaseKey(k) {
				t.Fatalf("invalid key %q accepted", k)
			}
		}
		g := osGrains(rel, "x86_64")
		if g["os"] == "" || g["os_family"] == "" {
			t.Fatalf("empty os grains from %q: %v", in, g)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add("MemTotal:  100 kB\nSwapTotal: 0 kB\n")
	f.Add("HugePages_Total: 3\n")
	f.Add(":\n")
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = ParseMeminfo(strings.NewReader(in))
	})
}

func FuzzParseCPUInfo(f *testing.F) {
	if b, err := os.ReadFile("testdata/root/proc/cpuinfo"); err == nil {
		f.Add(string(b))
	}
	f.Add("Features: a b\n")
	f.Fuzz(func(t *testing.T, in string) {
		ci, err := parseCPUInfo(strings.NewReader(in))
		if err == nil && ci.Flags == nil {
			t.Fatal("nil flags")
		}
	})
}

func FuzzParseAddrDump(f *testing.F) {
	// The machine's own dump is the most realistic seed there is.
	if b, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_UNSPEC); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, in []byte) {
		addrs, err := parseAddrDump(in)
		if err != nil {
			return
		}
		for _, a := range addrs {
			if !a.IP.IsValid() || a.PrefixLen > a.IP.BitLen() {
				t.Fatalf("bad address accepted: %+v", a)
			}
		}
	})
}
