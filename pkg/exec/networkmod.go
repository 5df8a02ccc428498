package exec

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sort"

	"github.com/brine-cm/brine/pkg/grains"
)

// interfacesFunc is swapped only by tests that need a fixed network.
var interfacesFunc = grains.Interfaces

func registerNetwork(r *Registry) {
	v4 := Doc{
		Summary: "Return the minion's IPv4 addresses, sorted numerically. Loopback addresses are left out unless include_loopback is set; an unknown interface gives an empty list, as in Salt.",
		Args: []ArgDoc{
			{Name: "interface", Type: Str, Doc: "only this interface"},
			{Name: "include_loopback", Type: Bool, Default: false, Doc: "keep 127.0.0.0/8"},
			{Name: "cidr", Type: Str, Doc: "only addresses inside this network (`10.0.0.0/8`)"},
			{Name: "type", Type: Str, Doc: "`public` or `private` (Python's ipaddress is_private); ignored when cidr is given"},
		},
		Returns: "list",
		Example: "brinectl '*' network.ip_addrs cidr=192.0.2.0/24",
	}
	r.RegisterBound("network.ip_addrs", v4, ipAddrsFunc("network.ip_addrs", 4))
	r.RegisterBound("network.ipaddrs", v4, ipAddrsFunc("network.ipaddrs", 4))
	v6 := Doc{
		Summary: "Return the minion's IPv6 addresses, sorted numerically, link-local included. ::1 is left out unless include_loopback is set.",
		Args: []ArgDoc{
			{Name: "interface", Type: Str, Doc: "only this interface"},
			{Name: "include_loopback", Type: Bool, Default: false, Doc: "keep ::1"},
			{Name: "cidr", Type: Str, Doc: "only addresses inside this network"},
		},
		Returns: "list",
	}
	r.RegisterBound("network.ip_addrs6", v6, ipAddrsFunc("network.ip_addrs6", 6))
	r.RegisterBound("network.ipaddrs6", v6, ipAddrsFunc("network.ipaddrs6", 6))

	r.RegisterBound("network.get_hostname", Doc{
		Summary: "Return the kernel's hostname (Python's socket.gethostname).",
		Returns: "string",
	}, func(context.Context, *Env, *Args) (any, error) {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("network.get_hostname: %w", err)
		}
		return h, nil
	})

	r.RegisterBound("network.interfaces", Doc{
		Summary: "Return every interface in Salt's shape: `{iface: {hwaddr, up, inet: [{address, netmask, broadcast, label}], inet6: [{address, prefixlen, scope}], secondary: [...]}}`.",
		Returns: "dict",
	}, func(ctx context.Context, _ *Env, _ *Args) (any, error) {
		ifcs, err := interfacesFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("network.interfaces: %w", err)
		}
		return grains.SaltInterfaces(ifcs), nil
	})

	r.RegisterBound("network.subnets", Doc{
		Summary: "Return the IPv4 networks the minion's non-loopback addresses are on, sorted.",
		Returns: "list",
	}, func(ctx context.Context, _ *Env, _ *Args) (any, error) {
		ifcs, err := interfacesFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("network.subnets: %w", err)
		}
		seen := map[netip.Prefix]bool{}
		var nets []netip.Prefix
		for _, ifc := range ifcs {
			for _, a := range ifc.Addrs {
				if !a.IP.Is4() || a.IP.IsLoopback() {
					continue
				}
				p := netip.PrefixFrom(a.IP, a.PrefixLen).Masked()
				if !seen[p] {
					seen[p] = true
					nets = append(nets, p)
				}
			}
		}
		sort.Slice(nets, func(i, j int) bool {
			if c := nets[i].Addr().Compare(nets[j].Addr()); c != 0 {
				return c < 0
			}
			return nets[i].Bits() < nets[j].Bits()
		})
		out := make([]any, len(nets))
		for i, n := range nets {
			out[i] = n.String()
		}
		return out, nil
	})

	r.RegisterBound("network.in_subnet", Doc{
		Summary: "Return whether any of the minion's non-loopback addresses is inside cidr.",
		Args:    []ArgDoc{{Name: "cidr", Type: Str, Required: true, Doc: "network, IPv4 or IPv6"}},
		Returns: "bool",
	}, func(ctx context.Context, _ *Env, a *Args) (any, error) {
		p, err := netip.ParsePrefix(a.Str("cidr"))
		if err != nil {
			return nil, badArg("network.in_subnet", "cidr", "%v", err)
		}
		ifcs, err := interfacesFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("network.in_subnet: %w", err)
		}
		for _, fam := range []int{4, 6} {
			for _, ip := range grains.SortedAddrs(ifcs, fam, false) {
				if p.Contains(ip) {
					return true, nil
				}
			}
		}
		return false, nil
	})
}

func ipAddrsFunc(fun string, family int) BoundFunc {
	return func(ctx context.Context, env *Env, a *Args) (any, error) {
		var cidr netip.Prefix
		if s := a.Str("cidr"); s != "" {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, badArg(fun, "cidr", "%v", err)
			}
			cidr = p
		}
		kind := ""
		if family == 4 {
			kind = a.Str("type")
			if kind != "" && kind != "public" && kind != "private" {
				return nil, badArg(fun, "type", "expected 'public' or 'private', got %q", kind)
			}
		}
		ifcs, err := interfacesFunc(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fun, err)
		}
		if name := a.Str("interface"); name != "" {
			var only []grains.Interface
			for _, ifc := range ifcs {
				if ifc.Name == name {
					only = append(only, ifc)
				}
			}
			if only == nil {
				env.logger().Warn("interface not found", "fun", fun, "interface", name)
			}
			ifcs = only
		}
		out := []any{}
		for _, ip := range grains.SortedAddrs(ifcs, family, a.Bool("include_loopback")) {
			switch {
			case cidr.IsValid():
				if !cidr.Contains(ip) {
					continue
				}
			case kind == "public" && isPrivate(ip), kind == "private" && !isPrivate(ip):
				continue
			}
			out = append(out, ip.String())
		}
		return out, nil
	}
}

// privateNets is Python's ipaddress is_private list, which Salt's
// type=private/public filter relies on; it is wider than RFC 1918.
var privateNets = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/29", "192.0.0.170/31", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
		"::1/128", "::/128", "::ffff:0:0/96", "100::/64", "2001::/23", "2001:db8::/32",
		"2001:10::/28", "fc00::/7", "fe80::/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

func isPrivate(ip netip.Addr) bool {
	for _, p := range privateNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
