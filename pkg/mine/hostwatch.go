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

// start takes the baseline and subscribes before returning, so a change
// made while the caller's first refresh runs is not lost; it then watches
// in the background until ctx ends.
func (w *hostWatcher) start(ctx context.Context, out chan<- struct{}) {
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
	go w.loop(ctx, out, last, events)
}

func (w *hostWatcher) loop(ctx context.Context, out chan<- struct{}, last string, events <-chan struct{}) {
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
				if ctx.Err() != nil {
					return
				}
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
// the hostname, every interface's name, flags, MAC and MTU, and every
// address. It costs two netlink dumps on Linux, whatever the number of
// interfaces, so polling it every few seconds stays cheap.
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
	sort.Slice(ifs, func(i, j int) bool { return ifs[i].Index < ifs[j].Index })
	for _, ifi := range ifs {
		fmt.Fprintf(&b, "%d %s %v %s %d\n", ifi.Index, ifi.Name, ifi.Flags, ifi.HardwareAddr, ifi.MTU)
	}
	addrs, err := addrLines(ifs)
	if err != nil {
		return "", fmt.Errorf("addresses: %w", err)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		b.WriteString(a)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// addrLinesPerInterface is the portable form: one query per interface.
func addrLinesPerInterface(ifs []net.Interface) ([]string, error) {
	var out []string
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ifi.Name, err)
		}
		for _, a := range addrs {
			out = append(out, fmt.Sprintf("%d %s", ifi.Index, a))
		}
	}
	return out, nil
}
