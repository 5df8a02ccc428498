package mine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"time"
)

// netlinkSettle coalesces the burst of netlink messages one change makes
// (an address and its route, a link flap) into one comparison.
const netlinkSettle = 100 * time.Millisecond

// hostWatcher signals when the host's interfaces, addresses or hostname
// change. Netlink makes address changes immediate; the poll catches the
// hostname (no netlink event) and anything netlink missed.
type hostWatcher struct {
	poll    time.Duration
	netlink bool
	log     *slog.Logger
}

func newHostWatcher(poll time.Duration, useNetlink bool, log *slog.Logger) *hostWatcher {
	if poll == 0 {
		poll = DefaultChangePoll
	}
	return &hostWatcher{poll: poll, netlink: useNetlink, log: log}
}

func (w *hostWatcher) run(ctx context.Context, out chan<- struct{}) {
	last, err := hostFingerprint()
	if err != nil {
		w.log.Warn("mine: reading host addresses", "err", err)
	}
	var events <-chan struct{}
	if w.netlink {
		if events, err = subscribeNetlink(ctx); err != nil {
			w.log.Info("mine: netlink unavailable, polling only", "poll", w.poll, "err", err)
			events = nil
		}
	}
	tick := time.NewTicker(w.poll)
	defer tick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	check := func() {
		fp, err := hostFingerprint()
		if err != nil {
			w.log.Warn("mine: reading host addresses", "err", err)
			return
		}
		if fp == last {
			return
		}
		last = fp
		select {
		case out <- struct{}{}:
		default: // one pending signal is enough: the handler re-reads everything
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			check()
		case _, ok := <-events:
			if !ok {
				events = nil
				w.log.Info("mine: netlink subscription ended, polling only", "poll", w.poll)
				continue
			}
			settle.Reset(netlinkSettle)
		case <-settle.C:
			check()
		}
	}
}

// hostFingerprint summarises what network-derived mine functions read:
// the hostname and every interface's name, flags, MAC, MTU and addresses.
func hostFingerprint() (string, error) {
	var b strings.Builder
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("hostname: %w", err)
	}
	b.WriteString(host)
	b.WriteByte('\n')
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("interfaces: %w", err)
	}
	sort.Slice(ifs, func(i, j int) bool { return ifs[i].Name < ifs[j].Name })
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			return "", fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		as := make([]string, len(addrs))
		for i, a := range addrs {
			as[i] = a.String()
		}
		sort.Strings(as)
		fmt.Fprintf(&b, "%s %v %s %d %s\n", ifi.Name, ifi.Flags, ifi.HardwareAddr, ifi.MTU, strings.Join(as, " "))
	}
	return b.String(), nil
}
