// Package targettest generates random minions and target expressions for
// property tests of code that selects minions (target.Matcher.Candidates,
// the master's registry). The vocabulary is small on purpose so that random
// expressions hit random grains often, and it includes the shapes that
// make Salt's grain matching subtle: case differences, nested dicts, lists
// of dicts, keys containing ':', numeric list indexes, IPv6 values.
package targettest

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/brine-cm/brine/pkg/target"
)

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// ID returns the i-th minion id of a random population.
func ID(r *rand.Rand, i int) string {
	return fmt.Sprintf("%s-%02d", pick(r, "web", "db", "cache", "Web"), i)
}

// Grains returns a random grains document.
func Grains(r *rand.Rand) map[string]any {
	g := map[string]any{
		"os":       pick(r, "Debian", "Ubuntu", "CentOS", "debian"),
		"num_cpus": pick[any](r, float64(1), float64(2), float64(4), 8, 2.5),
		"virtual":  pick[any](r, true, false, "physical", "kvm"),
	}
	roleNames := []any{"web", "db", "cache", "mongodb_server", "Web", "lb"}
	switch r.IntN(4) {
	case 0:
		g["roles"] = pick(r, roleNames...)
	case 1:
		// missing
	default:
		var roles []any
		for range r.IntN(4) {
			roles = append(roles, pick(r, roleNames...))
		}
		g["roles"] = roles
	}
	if r.IntN(4) > 0 {
		g["env"] = pick(r, "prod", "staging", "dev", "PROD")
	}
	ip := func() string { return fmt.Sprintf("10.0.%d.%d", r.IntN(2), 1+r.IntN(4)) }
	ipv4 := []any{"127.0.0.1"}
	eth0 := []any{}
	for range r.IntN(3) {
		a := ip()
		ipv4 = append(ipv4, a)
		eth0 = append(eth0, a)
	}
	g["ipv4"] = ipv4
	v6 := fmt.Sprintf("fe80::%d", 1+r.IntN(3))
	g["ipv6"] = []any{"::1", v6}
	ifaces := map[string]any{"lo": []any{"127.0.0.1", "::1"}, "eth0": append(eth0, v6)}
	if r.IntN(3) == 0 {
		ifaces["eth1"] = []any{}
	}
	g["ip_interfaces"] = ifaces
	var disks []any
	for i := range r.IntN(3) {
		disks = append(disks, map[string]any{"name": fmt.Sprintf("sd%c", 'a'+i+r.IntN(2)), "size": float64(100 * (1 + r.IntN(2)))})
	}
	if disks != nil {
		g["disks"] = disks
	}
	g["selinux"] = map[string]any{"enabled": r.IntN(2) == 0, "mode": pick(r, "Enforcing", "permissive")}
	switch r.IntN(4) {
	case 0:
		g["a:b"] = "c"
	case 1:
		g["a"] = map[string]any{"b": pick(r, "c", "C", "d")}
	case 2:
		g["a"] = map[string]any{"b:c": 1.0}
	}
	switch r.IntN(3) {
	case 0:
		g["nested"] = map[string]any{"x": map[string]any{"y": "z"}}
	case 1:
		g["nested"] = map[string]any{"x": []any{map[string]any{"y": "z"}, "y"}}
	}
	if r.IntN(2) == 0 {
		g["tags"] = []any{pick(r, "prod", "Prod", "eu"), pick(r, "us", "eu")}
	}
	if r.IntN(5) == 0 {
		g["empty"] = map[string]any{}
	}
	if r.IntN(5) == 0 {
		g["matrix"] = []any{[]any{"x"}, "y"}
	}
	return g
}

var leaves = []string{
	// id globs, lists and regexes
	"web-*", "db-0?", "web-01", "*", "*-1*", "[wd]*", "Web*", "L@web-01,db-02,cache-03", "L@db-04",
	"E@web-0[12]", "E@db", "E@web", "E@(?i)web", "E@.*-0",
	// grain equality: what the index answers
	"G@os:debian", "G@os:Debian", "G@roles:web", "G@roles:WEB", "G@roles:mongodb_server",
	"G@env:prod", "G@num_cpus:4", "G@num_cpus:2.5", "G@virtual:true", "G@virtual:kvm",
	"G@ipv4:10.0.0.1", "G@ipv4:10.0.1.2", "G@ip_interfaces:eth0:10.0.1.2", "G@ip_interfaces:eth0",
	"G@ip_interfaces:eth1", "G@ip_interfaces:ETH0", "G@ip_interfaces:eth0:fe80::2",
	"G@disks:name:sda", "G@disks:name:sdb", "G@disks:size:200", "G@selinux:enabled:false",
	"G@selinux:mode:enforcing", "G@selinux:enabled", "G@a:b:c", "G@a:b", "G@a:b:c:1", "G;@a:b;c",
	"G;@a;b:c", "G@nested:x:y:z", "G@nested:x:y", "G@nested:x", "G@ipv6:fe80::1", "G@ipv6:::1",
	"G@tags:prod", "G@empty:x", "G@matrix:y", "G@matrix:x",
	// grain targets the index cannot answer
	"G@os:deb*", "G@roles:w*", "G@*:web", "G@disks:0:name:sda", "G@roles:0:web", "G@roles:-1:db",
	"P@os:deb", "P@roles:(web|db)$", "P@ip_interfaces:eth0:10\\.0\\.1",
	// ipcidr
	"S@10.0.0.0/24", "S@10.0.1.2", "S@fe80::/64", "S@127.0.0.1",
}

// Expr returns a random target expression and its type. Most are compound
// expressions up to a few operators deep; some are single leaves in their
// own target type.
func Expr(r *rand.Rand) (string, target.Type) {
	if r.IntN(5) == 0 {
		leaf := pick(r, leaves...)
		switch {
		case strings.HasPrefix(leaf, "G@"):
			return leaf[2:], target.Grain
		case strings.HasPrefix(leaf, "P@"):
			return leaf[2:], target.GrainPCRE
		case strings.HasPrefix(leaf, "E@"):
			return leaf[2:], target.PCRE
		case strings.HasPrefix(leaf, "S@"):
			return leaf[2:], target.IPCIDR
		case strings.HasPrefix(leaf, "L@"):
			return leaf[2:], target.List
		case !strings.Contains(leaf, "@"):
			return leaf, target.Glob
		}
	}
	return compound(r, 3), target.Compound
}

func compound(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		leaf := pick(r, leaves...)
		if r.IntN(5) == 0 {
			return "not " + leaf
		}
		return leaf
	}
	a, b := compound(r, depth-1), compound(r, depth-1)
	switch r.IntN(5) {
	case 0:
		return "( " + a + " or " + b + " )"
	case 1:
		return a + " or " + b
	case 2:
		return "not ( " + a + " and " + b + " )"
	default:
		return a + " and " + b
	}
}
