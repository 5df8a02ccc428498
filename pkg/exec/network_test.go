package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const netnsDumpEnv = "BRINE_EXEC_NETNS_DUMP"

// netnsCalls run inside the namespace built by testdata/netns.sh; their
// results are pinned in testdata/netns.golden.json.
var netnsCalls = []struct {
	Fun    string
	Args   []any
	Kwargs map[string]any
}{
	{"network.ip_addrs", nil, nil},
	{"network.ip_addrs", nil, map[string]any{"include_loopback": true}},
	{"network.ip_addrs", nil, map[string]any{"cidr": "198.51.100.0/24"}},
	{"network.ip_addrs", nil, map[string]any{"cidr": "127.0.0.0/8"}},
	{"network.ip_addrs", nil, map[string]any{"cidr": "127.0.0.0/8", "include_loopback": true}},
	{"network.ip_addrs", nil, map[string]any{"type": "public"}},
	{"network.ip_addrs", nil, map[string]any{"type": "private"}},
	{"network.ip_addrs", []any{"vtest0"}, nil},
	{"network.ip_addrs", []any{"vtest1"}, nil},
	{"network.ip_addrs", []any{"lo"}, nil},
	{"network.ip_addrs", []any{"nosuch0"}, nil},
	{"network.ip_addrs6", nil, nil},
	{"network.ip_addrs6", nil, map[string]any{"include_loopback": true}},
	{"network.ip_addrs6", nil, map[string]any{"cidr": "2001:db8::/32"}},
	{"network.subnets", nil, nil},
	{"network.in_subnet", []any{"203.0.113.0/24"}, nil},
	{"network.in_subnet", []any{"127.0.0.0/8"}, nil},
	{"network.interfaces", nil, nil},
}

func TestMain(m *testing.M) {
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
	r := NewRegistry()
	var out []any
	for _, c := range netnsCalls {
		ret, err := r.Call(context.Background(), nil, c.Fun, c.Args, c.Kwargs)
		if err != nil {
			return fmt.Errorf("%s %v %v: %w", c.Fun, c.Args, c.Kwargs, err)
		}
		out = append(out, map[string]any{"call": c, "ret": ret})
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func TestNetworkFunctionsInNamespace(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--net", "sh", "testdata/netns.sh", self)
	cmd.Env = append(os.Environ(), netnsDumpEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("netns helper: %v\n%s", err, stderr.String())
	}
	var got any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("helper output %q: %v", raw, err)
	}
	b, _ := json.MarshalIndent(got, "", "  ")
	b = append(b, '\n')
	const golden = "testdata/netns.golden.json"
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs:\n%s", golden, b)
	}
}

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

// machineAddrs reads this machine's addresses with `ip -j addr`,
// independently of the code under test.
func machineAddrs(t *testing.T) []ipLink {
	t.Helper()
	out, err := exec.Command("ip", "-j", "addr").Output()
	if err != nil {
		t.Fatal(err)
	}
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatal(err)
	}
	return links
}

func sortedAddrs(addrs []string) []any {
	sort.Slice(addrs, func(i, j int) bool {
		return netip.MustParseAddr(addrs[i]).Less(netip.MustParseAddr(addrs[j]))
	})
	out := []any{}
	for _, a := range addrs {
		out = append(out, a)
	}
	return out
}

func TestNetworkFunctionsMatchMachine(t *testing.T) {
	r := NewRegistry()
	links := machineAddrs(t)
	var v4, v4lo, v6, v6lo []string
	var one4 []netip.Prefix
	for _, l := range links {
		for _, a := range l.Addrs {
			ip := netip.MustParseAddr(a.Local)
			switch a.Family {
			case "inet":
				v4lo = append(v4lo, a.Local)
				if !ip.IsLoopback() {
					v4 = append(v4, a.Local)
					one4 = append(one4, netip.PrefixFrom(ip, 32))
				}
			case "inet6":
				v6lo = append(v6lo, a.Local)
				if !ip.IsLoopback() {
					v6 = append(v6, a.Local)
				}
			}
		}
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fun    string
		kwargs map[string]any
		want   any
	}{
		{"network.ip_addrs", nil, sortedAddrs(v4)},
		{"network.ip_addrs", map[string]any{"include_loopback": true}, sortedAddrs(v4lo)},
		{"network.ip_addrs", map[string]any{"cidr": "127.0.0.0/8"}, []any{}},
		{"network.ip_addrs", map[string]any{"interface": "lo"}, []any{}},
		{"network.ip_addrs", map[string]any{"interface": "lo", "include_loopback": true}, []any{"127.0.0.1"}},
		{"network.ip_addrs6", nil, sortedAddrs(v6)},
		{"network.ip_addrs6", map[string]any{"include_loopback": true}, sortedAddrs(v6lo)},
		{"network.get_hostname", nil, hostname},
	}
	for _, p := range one4 {
		tests = append(tests, struct {
			fun    string
			kwargs map[string]any
			want   any
		}{"network.ip_addrs", map[string]any{"cidr": p.String()}, []any{p.Addr().String()}})
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.fun, tt.kwargs), func(t *testing.T) {
			got, err := r.Call(context.Background(), nil, tt.fun, nil, tt.kwargs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, machine says %v", got, tt.want)
			}
		})
	}

	t.Run("network.interfaces", func(t *testing.T) {
		got, err := r.Call(context.Background(), nil, "network.interfaces", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ifs := got.(map[string]any)
		if len(ifs) != len(links) {
			t.Fatalf("%d interfaces, machine has %d", len(ifs), len(links))
		}
		for _, l := range links {
			d, ok := ifs[l.Name].(map[string]any)
			if !ok {
				t.Fatalf("interface %s missing", l.Name)
			}
			up := false
			for _, f := range l.Flags {
				up = up || f == "UP"
			}
			if d["up"] != up {
				t.Errorf("%s up = %v, want %v", l.Name, d["up"], up)
			}
			if (l.LinkType == "ether" || l.LinkType == "loopback") && d["hwaddr"] != l.Address {
				t.Errorf("%s hwaddr = %v, want %s", l.Name, d["hwaddr"], l.Address)
			}
			var inet, inet6, sec []any
			for _, a := range l.Addrs {
				switch {
				case a.Family == "inet":
					var brd any
					if a.Broadcast != "" {
						brd = a.Broadcast
					}
					e := map[string]any{"address": a.Local, "netmask": netmask(a.Prefixlen), "broadcast": brd, "label": a.Label}
					if a.Secondary {
						e["type"] = "inet"
						sec = append(sec, e)
					} else {
						inet = append(inet, e)
					}
				case a.Family == "inet6":
					inet6 = append(inet6, map[string]any{"address": a.Local, "prefixlen": strconv.Itoa(a.Prefixlen), "scope": a.Scope})
				}
			}
			for k, want := range map[string][]any{"inet": inet, "inet6": inet6, "secondary": sec} {
				gotList, _ := d[k].([]any)
				if !reflect.DeepEqual(gotList, want) {
					t.Errorf("%s %s = %v, want %v", l.Name, k, gotList, want)
				}
			}
		}
	})
}

func netmask(bits int) string {
	var m [4]byte
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return strings.Join([]string{strconv.Itoa(int(m[0])), strconv.Itoa(int(m[1])), strconv.Itoa(int(m[2])), strconv.Itoa(int(m[3]))}, ".")
}

func TestNetworkArgumentErrors(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		fun     string
		kwargs  map[string]any
		wantErr string
	}{
		{"network.ip_addrs", map[string]any{"cidr": "10.0.0.0"}, "network.ip_addrs: argument 'cidr'"},
		{"network.ip_addrs", map[string]any{"type": "global"}, `argument 'type': expected 'public' or 'private', got "global"`},
		{"network.ip_addrs", map[string]any{"include_loopback": "perhaps"}, "argument 'include_loopback': expected bool"},
		{"network.ip_addrs6", map[string]any{"type": "public"}, "argument 'type': unexpected keyword argument"},
		{"network.in_subnet", map[string]any{"cidr": "nonsense"}, "network.in_subnet: argument 'cidr'"},
		{"network.in_subnet", nil, "argument 'cidr': missing required argument"},
	}
	for _, tt := range tests {
		t.Run(tt.wantErr, func(t *testing.T) {
			_, err := r.Call(context.Background(), nil, tt.fun, nil, tt.kwargs)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestIsPrivateMatchesPython checks the type=public/private filter against
// Python's ipaddress module, which is what Salt uses.
func TestIsPrivateMatchesPython(t *testing.T) {
	addrs := []string{"10.1.2.3", "172.16.0.1", "172.32.0.1", "192.168.1.1", "100.64.0.1", "8.8.8.8",
		"127.0.0.1", "169.254.1.1", "192.0.2.2", "198.18.0.1", "198.51.100.7", "203.0.113.5", "240.0.0.1",
		"1.1.1.1", "::1", "fd00::2", "fe80::1", "2001:db8::7", "2a00:1450::1", "::ffff:10.0.0.1"}
	script := "import ipaddress,sys\nfor a in sys.argv[1:]: print(ipaddress.ip_address(a).is_private)"
	out, err := exec.Command("python3", append([]string{"-c", script}, addrs...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(addrs) {
		t.Fatalf("python printed %q", out)
	}
	for i, a := range addrs {
		want := lines[i] == "True"
		if got := isPrivate(netip.MustParseAddr(a)); got != want {
			t.Errorf("isPrivate(%s) = %v, Python says %v", a, got, want)
		}
	}
}
