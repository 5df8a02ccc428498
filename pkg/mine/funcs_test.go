package mine

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func parseYAML(t testing.TB, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	return v
}

func TestParseFunctions(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    []FuncSpec
		wantErr string
	}{
		{name: "empty", yaml: "", want: []FuncSpec{}},
		{name: "salt basics", yaml: `
network.ip_addrs: [eth0]
network.get_hostname: []
test.ping:
`, want: []FuncSpec{
			{Name: "network.get_hostname", Function: "network.get_hostname"},
			{Name: "network.ip_addrs", Function: "network.ip_addrs", Args: []any{"eth0"}},
			{Name: "test.ping", Function: "test.ping"},
		}},
		{name: "kwargs mapping without alias", yaml: `
network.ip_addrs: {interface: eth0, include_loopback: true}
`, want: []FuncSpec{
			{Name: "network.ip_addrs", Function: "network.ip_addrs", Kwargs: map[string]any{"interface": "eth0", "include_loopback": true}},
		}},
		{name: "alias mapping form", yaml: `
web_ip:
  mine_function: network.ip_addrs
  cidr: 198.18.0.0/16
`, want: []FuncSpec{
			{Name: "web_ip", Function: "network.ip_addrs", Kwargs: map[string]any{"cidr": "198.18.0.0/16"}},
		}},
		{name: "alias list-of-dicts form with args", yaml: `
web_ip:
  - mine_function: network.ip_addrs
  - eth0
  - cidr: 198.18.0.0/16
    include_loopback: false
`, want: []FuncSpec{
			{Name: "web_ip", Function: "network.ip_addrs", Args: []any{"eth0"}, Kwargs: map[string]any{"cidr": "198.18.0.0/16", "include_loopback": false}},
		}},
		{name: "allow_tgt glob default", yaml: `
secret_ip:
  mine_function: network.ip_addrs
  allow_tgt: 'lb*'
`, want: []FuncSpec{
			{Name: "secret_ip", Function: "network.ip_addrs", AllowTgt: "lb*", AllowTgtType: "glob"},
		}},
		{name: "allow_tgt grain in list form", yaml: `
x509.get_pem_entries:
  - /etc/pki/ca.crt
  - allow_tgt: 'role:web'
  - allow_tgt_type: grain
`, want: []FuncSpec{
			{Name: "x509.get_pem_entries", Function: "x509.get_pem_entries", Args: []any{"/etc/pki/ca.crt"}, AllowTgt: "role:web", AllowTgtType: "grain"},
		}},
		{name: "allow_tgt as a list of ids", yaml: `
db_pw: {mine_function: pillar.get, allow_tgt: [web1, web2]}
`, want: []FuncSpec{
			{Name: "db_pw", Function: "pillar.get", AllowTgt: "web1,web2", AllowTgtType: "list"},
		}},
		{name: "numbers are JSON-shaped", yaml: `
disk.usage: [1, 2.5]
`, want: []FuncSpec{
			{Name: "disk.usage", Function: "disk.usage", Args: []any{1.0, 2.5}},
		}},
		{name: "not a mapping", yaml: "- network.ip_addrs", wantErr: "mine_functions: want a mapping"},
		{name: "scalar definition", yaml: "network.ip_addrs: eth0", wantErr: `"network.ip_addrs": value must be a list`},
		{name: "alias without mine_function", yaml: "web_ip: {cidr: 198.18.0.0/16}", wantErr: `"web_ip": "web_ip" is not a module.function name; an alias needs mine_function`},
		{name: "bad mine_function", yaml: "web_ip: {mine_function: 'rm -rf'}", wantErr: `"web_ip": mine_function "rm -rf" is not`},
		{name: "mine_function not a string", yaml: "web_ip: {mine_function: [a]}", wantErr: `"web_ip": mine_function must be`},
		{name: "duplicate kwarg across items", yaml: "web_ip: [{mine_function: a.b}, {cidr: x}, {cidr: y}]", wantErr: `"web_ip": item 2: keyword "cidr" given twice`},
		{name: "bad allow_tgt_type", yaml: "a.b: {allow_tgt: x, allow_tgt_type: regex}", wantErr: `"a.b": allow_tgt_type regex is not`},
		{name: "allow_tgt_type alone", yaml: "a.b: {allow_tgt_type: glob}", wantErr: `"a.b": allow_tgt_type "glob" without allow_tgt`},
		{name: "allow_tgt wrong type", yaml: "a.b: {allow_tgt: 3}", wantErr: `"a.b": allow_tgt must be`},
		{name: "allow_tgt list with comma", yaml: "a.b: {allow_tgt: ['x,y']}", wantErr: `"a.b": allow_tgt[0] must be a minion id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFunctions(parseYAML(t, tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// yaml.v2-style maps (map[any]any) are accepted too, and a non-string key
// is named in the error.
func TestParseFunctionsAnyKeys(t *testing.T) {
	got, err := ParseFunctions(map[any]any{"web_ip": []any{map[any]any{"mine_function": "network.ip_addrs"}}})
	if err != nil || len(got) != 1 || got[0].Function != "network.ip_addrs" {
		t.Fatalf("got %#v, %v", got, err)
	}
	_, err = ParseFunctions(map[any]any{42: nil})
	if err == nil || !strings.Contains(err.Error(), "key 42 is a int") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParseFunctions: no input panics, accepted specs are well-formed,
// and MarshalFunctions round-trips through ParseFunctions.
func FuzzParseFunctions(f *testing.F) {
	for _, seed := range []string{
		"network.ip_addrs: [eth0]\nnetwork.get_hostname: []\n",
		"web_ip: {mine_function: network.ip_addrs, cidr: 198.18.0.0/16, allow_tgt: 'lb*'}\n",
		"web_ip: [{mine_function: network.ip_addrs}, eth0, {cidr: 198.18.0.0/16}]\n",
		"db: {mine_function: pillar.get, allow_tgt: [a, b]}\n",
		"a.b: {allow_tgt: x, allow_tgt_type: grain}\n",
		"test.ping:\n",
		"x: 1\n",
		"- a\n",
		"a.b: [[1, 2], {k: {n: [1]}}]\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var v any
		if yaml.Unmarshal([]byte(src), &v) != nil {
			return
		}
		specs, err := ParseFunctions(v)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "mine_functions: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if !sort.SliceIsSorted(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name }) {
			t.Fatalf("not sorted: %v", specs)
		}
		for _, sp := range specs {
			if !funcNameRE.MatchString(sp.Function) {
				t.Fatalf("accepted bad function %q", sp.Function)
			}
			if (sp.AllowTgt == "") != (sp.AllowTgtType == "") {
				t.Fatalf("half an ACL: %#v", sp)
			}
		}
		again, err := ParseFunctions(MarshalFunctions(specs))
		if err != nil {
			t.Fatalf("re-parse of %#v: %v", MarshalFunctions(specs), err)
		}
		if !reflect.DeepEqual(again, specs) {
			t.Fatalf("round trip\n got %#v\nwant %#v", again, specs)
		}
	})
}
