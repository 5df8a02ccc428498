package grains

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Interface is one network link with its addresses in kernel order, the
// order `ip addr` shows and Salt reports.
type Interface struct {
	Name     string
	Index    int
	HWAddr   string // "" when the link type has none (tun, wireguard)
	Up       bool   // administratively up, Salt's "up"
	Loopback bool
	Addrs    []Addr
}

// Addr is one address on an Interface.
type Addr struct {
	IP        netip.Addr
	PrefixLen int
	Broadcast netip.Addr // zero Addr when the kernel has none
	Label     string     // IPv4 label ("eth0", "eth0:1"); "" for IPv6
	Scope     string     // global, site, link, host, nowhere
	// Secondary is IPv4's secondary flag. Salt lists such addresses under
	// "secondary" rather than "inet".
	Secondary bool
}

// Interfaces lists the machine's links and their addresses. Links come from
// net.Interfaces; addresses come from a netlink dump because only netlink
// carries labels, broadcast and the secondary flag Salt's grains expose.
func Interfaces(ctx context.Context) ([]Interface, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	links, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	dump, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netlink address dump: %w", err)
	}
	addrs, err := parseAddrDump(dump)
	if err != nil {
		return nil, err
	}
	byIndex := map[int][]Addr{}
	for _, a := range addrs {
		byIndex[a.index] = append(byIndex[a.index], a.Addr)
	}
	out := make([]Interface, 0, len(links))
	for _, l := range links {
		ifc := Interface{
			Name:     l.Name,
			Index:    l.Index,
			Up:       l.Flags&net.FlagUp != 0,
			Loopback: l.Flags&net.FlagLoopback != 0,
			Addrs:    byIndex[l.Index],
		}
		switch {
		case len(l.HardwareAddr) > 0:
			ifc.HWAddr = l.HardwareAddr.String()
		case ifc.Loopback:
			// `ip` prints link/loopback 00:00:00:00:00:00 and Salt keeps it.
			ifc.HWAddr = "00:00:00:00:00:00"
		}
		out = append(out, ifc)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

type indexedAddr struct {
	index int
	Addr
}

const (
	nlmsgHdrLen  = 16
	ifaddrMsgLen = 8
	rtaHdrLen    = 4
)

func nlAlign(n int) int { return (n + 3) &^ 3 }

// parseAddrDump decodes an RTM_GETADDR dump (a sequence of netlink
// messages). It is written by hand, not with syscall's helpers, so that
// truncated or hostile bytes produce an error instead of a slice panic.
func parseAddrDump(b []byte) ([]indexedAddr, error) {
	var out []indexedAddr
	ne := binary.NativeEndian
	for off := 0; off < len(b); {
		if len(b)-off < nlmsgHdrLen {
			return out, fmt.Errorf("netlink: %d trailing bytes at offset %d, shorter than a header", len(b)-off, off)
		}
		msgLen := int(ne.Uint32(b[off:]))
		typ := ne.Uint16(b[off+4:])
		if msgLen < nlmsgHdrLen || msgLen > len(b)-off {
			return out, fmt.Errorf("netlink: message at offset %d claims length %d of %d available", off, msgLen, len(b)-off)
		}
		body := b[off+nlmsgHdrLen : off+msgLen]
		next := off + nlAlign(msgLen)
		switch typ {
		case syscall.NLMSG_DONE:
			return out, nil
		case syscall.NLMSG_ERROR:
			if len(body) >= 4 {
				if code := int32(ne.Uint32(body)); code != 0 {
					return out, fmt.Errorf("netlink: kernel error: %w", syscall.Errno(-code))
				}
			}
			return out, errors.New("netlink: error message in address dump")
		case syscall.RTM_NEWADDR:
			a, ok, err := parseIfAddr(body)
			if err != nil {
				return out, fmt.Errorf("netlink: message at offset %d: %w", off, err)
			}
			if ok {
				out = append(out, a)
			}
		}
		if next <= off {
			break
		}
		off = next
	}
	return out, nil
}

func parseIfAddr(body []byte) (indexedAddr, bool, error) {
	var a indexedAddr
	if len(body) < ifaddrMsgLen {
		return a, false, fmt.Errorf("ifaddrmsg of %d bytes, need %d", len(body), ifaddrMsgLen)
	}
	family := body[0]
	a.PrefixLen = int(body[1])
	flags := uint32(body[2])
	a.Scope = scopeName(body[3])
	a.index = int(binary.NativeEndian.Uint32(body[4:]))
	var local, address netip.Addr
	for off := ifaddrMsgLen; off+rtaHdrLen <= len(body); {
		l := int(binary.NativeEndian.Uint16(body[off:]))
		typ := binary.NativeEndian.Uint16(body[off+2:])
		if l < rtaHdrLen || off+l > len(body) {
			return a, false, fmt.Errorf("attribute at offset %d claims length %d", off, l)
		}
		val := body[off+rtaHdrLen : off+l]
		switch typ {
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(val)
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(val)
		case unix.IFA_BROADCAST:
			a.Broadcast, _ = netip.AddrFromSlice(val)
		case unix.IFA_LABEL:
			if i := indexByte(val, 0); i >= 0 {
				val = val[:i]
			}
			a.Label = string(val)
		case unix.IFA_FLAGS:
			if len(val) >= 4 {
				flags = binary.NativeEndian.Uint32(val)
			}
		}
		off += nlAlign(l)
	}
	// On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
	ip := local
	if !ip.IsValid() {
		ip = address
	}
	switch {
	case family == syscall.AF_INET && ip.Is4():
		a.Secondary = flags&unix.IFA_F_SECONDARY != 0
	case family == syscall.AF_INET6 && ip.Is6():
		// The same bit means "temporary" for IPv6; labels are IPv4-only.
		a.Label = ""
	default:
		return a, false, nil
	}
	if a.PrefixLen > ip.BitLen() {
		return a, false, fmt.Errorf("prefix length %d for %s", a.PrefixLen, ip)
	}
	a.IP = ip
	return a, true, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func scopeName(s uint8) string {
	switch s {
	case unix.RT_SCOPE_UNIVERSE:
		return "global"
	case unix.RT_SCOPE_SITE:
		return "site"
	case unix.RT_SCOPE_LINK:
		return "link"
	case unix.RT_SCOPE_HOST:
		return "host"
	case unix.RT_SCOPE_NOWHERE:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

// Netmask is the dotted IPv4 mask Salt prints for an inet address.
func (a Addr) Netmask() string {
	if !a.IP.Is4() {
		return strconv.Itoa(a.PrefixLen)
	}
	m := net.CIDRMask(a.PrefixLen, 32)
	return net.IP(m).String()
}

// SaltInterfaces renders links in the shape of Salt's network.interfaces:
// {iface: {hwaddr, up, inet: [...], inet6: [...], secondary: [...]}}.
func SaltInterfaces(ifcs []Interface) map[string]any {
	out := make(map[string]any, len(ifcs))
	for _, ifc := range ifcs {
		d := map[string]any{"up": ifc.Up}
		if ifc.HWAddr != "" {
			d["hwaddr"] = ifc.HWAddr
		}
		var inet, inet6, secondary []any
		for _, a := range ifc.Addrs {
			var brd any
			if a.Broadcast.IsValid() {
				brd = a.Broadcast.String()
			}
			switch {
			case a.IP.Is4() && a.Secondary:
				secondary = append(secondary, map[string]any{
					"type": "inet", "address": a.IP.String(), "netmask": a.Netmask(),
					"broadcast": brd, "label": a.Label,
				})
			case a.IP.Is4():
				inet = append(inet, map[string]any{
					"address": a.IP.String(), "netmask": a.Netmask(),
					"broadcast": brd, "label": a.Label,
				})
			default:
				inet6 = append(inet6, map[string]any{
					"address": a.IP.String(), "prefixlen": strconv.Itoa(a.PrefixLen), "scope": a.Scope,
				})
			}
		}
		if inet != nil {
			d["inet"] = inet
		}
		if inet6 != nil {
			d["inet6"] = inet6
		}
		if secondary != nil {
			d["secondary"] = secondary
		}
		out[ifc.Name] = d
	}
	return out
}

// SortedAddrs returns every address of the wanted family (4 or 6) on the
// given interfaces, deduplicated and in numeric order, as Salt's
// salt.utils.network.ip_addrs does. Loopback addresses are kept only when
// includeLoopback is set.
func SortedAddrs(ifcs []Interface, family int, includeLoopback bool) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, ifc := range ifcs {
		for _, a := range ifc.Addrs {
			if (family == 4) != a.IP.Is4() {
				continue
			}
			if a.IP.IsLoopback() && !includeLoopback {
				continue
			}
			if !seen[a.IP] {
				seen[a.IP] = true
				out = append(out, a.IP)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// networkGrains derives Salt's ipv4, ipv6, ip_interfaces, ip4_interfaces,
// ip6_interfaces and hwaddr_interfaces grains.
func networkGrains(ifcs []Interface) map[string]any {
	g := map[string]any{}
	g["ipv4"] = addrStrings(SortedAddrs(ifcs, 4, true))
	g["ipv6"] = addrStrings(SortedAddrs(ifcs, 6, true))
	ipIf, ip4If, ip6If, hw := map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}
	for _, ifc := range ifcs {
		// Salt's order: primary inet, then inet6, then secondaries.
		var v4, v6, sec []any
		for _, a := range ifc.Addrs {
			switch {
			case a.IP.Is4() && a.Secondary:
				sec = append(sec, a.IP.String())
			case a.IP.Is4():
				v4 = append(v4, a.IP.String())
			default:
				v6 = append(v6, a.IP.String())
			}
		}
		all := append(append(append([]any{}, v4...), v6...), sec...)
		ipIf[ifc.Name] = all
		ip4If[ifc.Name] = append(append([]any{}, v4...), sec...)
		ip6If[ifc.Name] = append([]any{}, v6...)
		if ifc.HWAddr != "" {
			hw[ifc.Name] = ifc.HWAddr
		}
	}
	g["ip_interfaces"] = ipIf
	g["ip4_interfaces"] = ip4If
	g["ip6_interfaces"] = ip6If
	g["hwaddr_interfaces"] = hw
	return g
}

func addrStrings(addrs []netip.Addr) []any {
	out := make([]any, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}
