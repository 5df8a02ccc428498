package mine

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
)

// realRunner implements the few execution functions the tests publish,
// reading the real host the way the minion's network module does.
func realRunner(_ context.Context, fun string, args []any, kwargs map[string]any) (any, error) {
	switch fun {
	case "test.ping":
		return true, nil
	case "network.get_hostname":
		return os.Hostname()
	case "network.ip_addrs":
		iface, _ := kwargs["interface"].(string)
		if len(args) > 0 {
			iface, _ = args[0].(string)
		}
		loopback, _ := kwargs["include_loopback"].(bool)
		cidr, _ := kwargs["cidr"].(string)
		return ipAddrs(iface, loopback, cidr)
	}
	return nil, fmt.Errorf("'%s' is not available", fun)
}

// ipAddrs is Salt's network.ip_addrs: sorted IPv4 addresses, loopback
// excluded unless asked, optionally limited to one interface or a CIDR.
func ipAddrs(iface string, loopback bool, cidr string) ([]string, error) {
	var within *net.IPNet
	if cidr != "" {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return nil, fmt.Errorf("cidr %q: %w", cidr, err)
		}
		within = n
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, ifi := range ifs {
		if iface != "" && ifi.Name != iface {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil {
				continue
			}
			if ipn.IP.IsLoopback() && !loopback {
				continue
			}
			if within != nil && !within.Contains(ipn.IP) {
				continue
			}
			out = append(out, ipn.IP.String())
		}
	}
	sort.Strings(out)
	return out, nil
}
