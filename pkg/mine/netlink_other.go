//go:build !linux

package mine

import (
	"context"
	"errors"
)

func subscribeNetlink(context.Context) (<-chan struct{}, error) {
	return nil, errors.New("netlink is Linux-only")
}
