package grains

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite golden files")

const netnsDumpEnv = "BRINE_GRAINS_NETNS_DUMP"

func TestMain(m *testing.M) {
	// Inside the network namespace built by testdata/netns.sh the test
	// binary only reports what it sees; the parent test compares.
	if os.Getenv(netnsDumpEnv) == "1" {
		if err := dumpNetns(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func dumpNetns() error {
	ctx := context.Background()
	ifcs, err := Interfaces(ctx)
	if err != nil {
		return err
	}
	g, err := Core(ctx)
	if err != nil {
		return fmt.Errorf("core grains in netns: %w", err)
	}
	out := map[string]any{"interfaces": SaltInterfaces(ifcs)}
	for _, k := range []string{"ipv4", "ipv6", "ip_interfaces", "ip4_interfaces", "ip6_interfaces", "hwaddr_interfaces"} {
		out[k] = g[k]
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func golden(t *testing.T, path string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from output:\n--- got\n%s\n--- want\n%s", path, b, want)
	}
}

func TestOSGrainsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/os-release/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.json") {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			rel, perr := ParseOSRelease(fh)
			got := map[string]any{"parsed": rel, "grains": osGrains(rel, "x86_64")}
			if perr != nil {
				got["error"] = perr.Error()
			}
			golden(t, f+".golden.json", got)
		})
	}
	if n < 5 {
		t.Fatalf("only %d os-release samples found", n)
	}
}

func TestParseOSReleaseErrors(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
		want              map[string]string
	}{
		{"plain", "ID=debian\nVERSION_ID=\"12\"\n", "", map[string]string{"ID": "debian", "VERSION_ID": "12"}},
		{"single quotes", "NAME='A B'\n", "", map[string]string{"NAME": "A B"}},
		{"escapes", `X="a\"b\\c\$d\n"`, "", map[string]string{"X": `a"b\c$d\n`}},
		{"comment and blank", "# c\n\n  ID=x  \n", "", map[string]string{"ID": "x"}},
		{"empty value", "X=\n", "", map[string]string{"X": ""}},
		{"no equals keeps others", "ID=a\nbogus\nB=c\n", "line 2", map[string]string{"ID": "a", "B": "c"}},
		{"unterminated", "ID=\"abc\n", "line 1: key ID: unterminated double quote", map[string]string{}},
		{"bad key", "1X=a\n", "line 1", map[string]string{}},
		{"unquoted space", "NAME=Debian GNU\n", "line 1: key NAME", map[string]string{}},
		{"text after quote", "NAME=\"a\"b\n", "text after closing", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOSRelease(strings.NewReader(tt.in))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
		want              map[string]uint64
	}{
		{"kB and bare", "MemTotal:  100 kB\nHugePages_Total:   3\n", "", map[string]uint64{"MemTotal": 100, "HugePages_Total": 3}},
		{"no colon", "MemTotal 100 kB\n", "line 1: no ':'", nil},
		{"bad unit", "MemTotal: 100 MB\n", "line 1 (MemTotal)", nil},
		{"not a number", "MemTotal: lots kB\n", "line 1 (MemTotal)", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMeminfo(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestCoreFromFakeRoot pins how file-derived grains come out of a known tree.
func TestCoreFromFakeRoot(t *testing.T) {
	src := source{
		root: "testdata/root",
		uname: func() (unix.Utsname, error) {
			var u unix.Utsname
			copy(u.Sysname[:], "Linux")
			copy(u.Release[:], "6.1.0-test")
			copy(u.Version[:], "#1 SMP test")
			copy(u.Machine[:], "aarch64")
			copy(u.Nodename[:], "web1")
			return u, nil
		},
		interfaces: func(context.Context) ([]Interface, error) {
			return []Interface{{
				Name: "lo", Index: 1, Up: true, Loopback: true, HWAddr: "00:00:00:00:00:00",
				Addrs: []Addr{{IP: netip.MustParseAddr("127.0.0.1"), PrefixLen: 8, Label: "lo", Scope: "host"}},
			}}, nil
		},
		hostname: func() (string, error) { return "web1.example.org", nil },
	}
	g, err := core(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	// Values of the process running the test, not of the tree.
	for _, k := range []string{"num_cpus", "pid", "path", "username", "uid", "gid", "groupname", "brineversion"} {
		if _, ok := g[k]; !ok && k != "groupname" {
			t.Errorf("grain %s missing", k)
		}
		delete(g, k)
	}
	golden(t, "testdata/core.golden.json", g)
}

func TestCoreReportsBrokenSources(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\nNAME=x y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := realSource()
	src.root = root
	g, err := core(context.Background(), src)
	if err == nil {
		t.Fatal("expected an error for the broken tree")
	}
	for _, want := range []string{filepath.Join(root, "etc/os-release") + ": os-release line 2", "memory:", "cpu:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// What could be read is still there.
	// Without any os-release the os grains fall back quietly.
	empty := realSource()
	empty.root = t.TempDir()
	eg, err := core(context.Background(), empty)
	if err == nil || strings.Contains(err.Error(), "os release") || eg["os"] != "Linux" || eg["os_family"] != "Linux" {
		t.Errorf("missing os-release: os=%v family=%v err=%v", eg["os"], eg["os_family"], err)
	}
	if _, ok := g["machine_id"]; ok {
		t.Error("machine_id set without a machine-id file")
	}
	if g["os"] != "Debian" || g["kernelrelease"] == "" {
		t.Errorf("partial grains lost: os=%v kernelrelease=%v", g["os"], g["kernelrelease"])
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestCoreMatchesMachine(t *testing.T) {
	g, err := Core(context.Background())
	if err != nil {
		t.Fatalf("Core: %v", err)
	}
	if _, ok := g["id"]; ok {
		t.Error("Core must not set id")
	}
	memKB := run(t, "awk", "/^MemTotal:/{print $2}", "/proc/meminfo")
	kb, _ := strconv.Atoi(memKB)
	osrel := func(field string) string {
		return run(t, "sh", "-c", `. /etc/os-release && printf %s "$`+field+`"`)
	}
	machineID, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"num_cpus":      runtime.NumCPU(),
		"kernel":        run(t, "uname", "-s"),
		"kernelrelease": run(t, "uname", "-r"),
		"kernelversion": run(t, "uname", "-v"),
		"cpuarch":       run(t, "uname", "-m"),
		"host":          run(t, "hostname", "-s"),
		"fqdn":          run(t, "hostname", "-f"),
		"mem_total":     kb / 1024,
		"osrelease":     osrel("VERSION_ID"),
		"oscodename":    osrel("VERSION_CODENAME"),
		"machine_id":    strings.TrimSpace(string(machineID)),
		"pid":           os.Getpid(),
	}
	for k, v := range want {
		if !reflect.DeepEqual(g[k], v) {
			t.Errorf("grain %s = %#v, machine says %#v", k, g[k], v)
		}
	}
	if osrel("ID") == "debian" {
		if g["os"] != "Debian" || g["os_family"] != "Debian" {
			t.Errorf("os/os_family = %v/%v on Debian", g["os"], g["os_family"])
		}
	}
	compareWithIPCommand(t, g)
}

// ipLink is the part of `ip -j addr` the comparisons need.
type ipLink struct {
	Name     string   `json:"ifname"`
	Address  string   `json:"address"`
	LinkType string   `json:"link_type"`
	Flags    []string `json:"flags"`
	Addrs    []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		Prefixlen int    `json:"prefixlen"`
		Broadcast string `json:"broadcast"`
		Label     string `json:"label"`
		Secondary bool   `json:"secondary"`
		Scope     string `json:"scope"`
	} `json:"addr_info"`
}

func ipAddrJSON(t *testing.T) []ipLink {
	t.Helper()
	var links []ipLink
	if err := json.Unmarshal([]byte(run(t, "ip", "-j", "addr")), &links); err != nil {
		t.Fatal(err)
	}
	return links
}

func compareWithIPCommand(t *testing.T, g map[string]any) {
	t.Helper()
	links := ipAddrJSON(t)
	var v4, v6 []netip.Addr
	ipIf := map[string]any{}
	hw := map[string]any{}
	for _, l := range links {
		var p4, p6, sec []any
		for _, a := range l.Addrs {
			ip := netip.MustParseAddr(a.Local)
			switch {
			case a.Family == "inet" && a.Secondary:
				sec = append(sec, a.Local)
				v4 = append(v4, ip)
			case a.Family == "inet":
				p4 = append(p4, a.Local)
				v4 = append(v4, ip)
			case a.Family == "inet6":
				p6 = append(p6, a.Local)
				v6 = append(v6, ip)
			}
		}
		ipIf[l.Name] = append(append(append([]any{}, p4...), p6...), sec...)
		if l.LinkType == "ether" || l.LinkType == "loopback" {
			hw[l.Name] = l.Address
		}
	}
	sortStrings := func(a []netip.Addr) []any {
		sort.Slice(a, func(i, j int) bool { return a[i].Less(a[j]) })
		out := []any{}
		for _, x := range a {
			out = append(out, x.String())
		}
		return out
	}
	checks := map[string]any{
		"ipv4":              sortStrings(v4),
		"ipv6":              sortStrings(v6),
		"ip_interfaces":     ipIf,
		"hwaddr_interfaces": hw,
	}
	for k, want := range checks {
		if !reflect.DeepEqual(g[k], want) {
			t.Errorf("grain %s = %v, `ip -j addr` says %v", k, g[k], want)
		}
	}
	if !contains(g["ipv4"], "127.0.0.1") {
		t.Errorf("ipv4 grain must include 127.0.0.1 as Salt's does: %v", g["ipv4"])
	}
}

func contains(list any, s string) bool {
	l, _ := list.([]any)
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestNetworkGrainsInNamespace builds a namespace with a primary, a
// secondary and a labelled address plus a down link, and checks the
// grains and Salt-shaped interfaces against a golden file.
func TestNetworkGrainsInNamespace(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--net", "sh", "testdata/netns.sh", self)
	cmd.Env = append(os.Environ(), netnsDumpEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("netns helper: %v\n%s", err, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	golden(t, "testdata/netns.golden.json", got)
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name         string
		core, static map[string]any
		want         map[string]any
	}{
		{"static wins scalar", map[string]any{"os": "Debian", "num_cpus": 2}, map[string]any{"os": "Custom"},
			map[string]any{"os": "Custom", "num_cpus": 2}},
		{"deep merge", map[string]any{"ip_interfaces": map[string]any{"lo": []any{"127.0.0.1"}, "eth0": []any{"192.0.2.2"}}},
			map[string]any{"ip_interfaces": map[string]any{"eth0": []any{"192.0.2.9"}}},
			map[string]any{"ip_interfaces": map[string]any{"lo": []any{"127.0.0.1"}, "eth0": []any{"192.0.2.9"}}}},
		{"list replaced", map[string]any{"roles": []any{"a"}}, map[string]any{"roles": []any{"b", "c"}},
			map[string]any{"roles": []any{"b", "c"}}},
		{"map replaces scalar", map[string]any{"x": 1}, map[string]any{"x": map[string]any{"y": 2}},
			map[string]any{"x": map[string]any{"y": 2}}},
		{"scalar replaces map", map[string]any{"x": map[string]any{"y": 2}}, map[string]any{"x": "flat"},
			map[string]any{"x": "flat"}},
		{"nil static", map[string]any{"a": 1}, nil, map[string]any{"a": 1}},
		{"nil core", nil, map[string]any{"roles": []any{"web"}}, map[string]any{"roles": []any{"web"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := json.Marshal(tt.core)
			beforeS, _ := json.Marshal(tt.static)
			got := Merge(tt.core, tt.static)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			after, _ := json.Marshal(tt.core)
			afterS, _ := json.Marshal(tt.static)
			if !bytes.Equal(before, after) || !bytes.Equal(beforeS, afterS) {
				t.Fatal("Merge modified its inputs")
			}
			// The result shares no maps with the inputs.
			if m, ok := got["ip_interfaces"].(map[string]any); ok {
				m["new"] = true
				if _, leaked := tt.core["ip_interfaces"].(map[string]any)["new"]; leaked {
					t.Fatal("result aliases core")
				}
			}
		})
	}
}

func TestParseAddrDumpErrors(t *testing.T) {
	ne := func(n uint32) []byte { b := make([]byte, 4); putNative32(b, n); return b }
	hdr := func(length uint32, typ uint16) []byte {
		b := make([]byte, 16)
		putNative32(b, length)
		putNative16(b[4:], typ)
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr string
		wantN   int
	}{
		{"empty", nil, "", 0},
		{"short header", []byte{1, 2, 3}, "shorter than a header", 0},
		{"length past end", hdr(64, 20), "claims length 64", 0},
		{"short ifaddrmsg", append(hdr(18, 20), 2, 24), "ifaddrmsg of 2 bytes", 0},
		{"kernel error", append(hdr(20, 2), ne(uint32(0xffffffff-12))...), "kernel error", 0},
		{"done stops", append(hdr(16, 3), hdr(64, 20)...), "", 0},
		{"bad attribute length", append(append(hdr(16+8+4, 20), 2, 24, 0, 0, 1, 0, 0, 0), 200, 0, 2, 0), "attribute at offset 8", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAddrDump(tt.in)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
			}
			if len(got) != tt.wantN {
				t.Fatalf("got %d addresses", len(got))
			}
		})
	}
}
