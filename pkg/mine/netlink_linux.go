package mine

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// subscribeNetlink delivers a signal for every rtnetlink message about
// addresses or links. The messages are not parsed: any of them only means
// "look again", and the fingerprint decides whether something changed.
func subscribeNetlink(ctx context.Context) (<-chan struct{}, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{
		Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_LINK,
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// A non-blocking fd joins Go's poller, so Close unblocks the reader.
	f := os.NewFile(uintptr(fd), "rtnetlink")
	ch := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		defer close(ch)
		buf := make([]byte, 1<<16)
		for {
			_, err := f.Read(buf)
			// ENOBUFS: the kernel dropped messages for us; something changed.
			if err != nil && !errors.Is(err, unix.ENOBUFS) {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, nil
}
