//go:build !linux

package mine

import (
	"context"
	"errors"
	"net"
)

func subscribeNetlink(context.Context) (<-chan struct{}, error) {
	return nil, errors.New("netlink is Linux-only")
}

func addrLines(ifs []net.Interface) ([]string, error) { return addrLinesPerInterface(ifs) }
