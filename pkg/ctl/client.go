package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/brine-cm/brine/proto/brinev1"
)

// DefaultSocket is where brine-master listens for brinectl.
const DefaultSocket = "/var/lib/brine/master/control.sock"

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = "BRINE_SOCKET"

// ErrNoMaster is returned (wrapped) when nothing listens on the socket.
var ErrNoMaster = errors.New("no master is running")

// Client is a connection to the master's control socket.
type Client struct {
	Socket  string
	conn    *grpc.ClientConn
	Control brinev1.ControlClient
}

// Dial connects to the master at socket. The socket's file permissions are
// the only authentication, so there are no credentials here. The socket is
// probed first so that a missing or stale socket gives a clear error
// instead of gRPC's retrying "connection refused".
func Dial(ctx context.Context, socket string) (*Client, error) {
	abs, err := filepath.Abs(socket)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", socket, err)
	}
	if err := probe(ctx, abs); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+abs, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to master at %s: %w", abs, err)
	}
	return &Client{Socket: abs, conn: conn, Control: brinev1.NewControlClient(conn)}, nil
}

func probe(ctx context.Context, path string) error {
	noMaster := &connError{msg: fmt.Sprintf("no master is running at %s", path), err: ErrNoMaster}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return noMaster
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
		return c.Close()
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTSOCK):
		return noMaster
	case errors.Is(err, os.ErrPermission):
		return &connError{msg: fmt.Sprintf("permission denied on control socket %s (run as root or as a member of its group)", path), err: err}
	}
	return &connError{msg: fmt.Sprintf("cannot connect to master at %s: %v", path, err), err: err}
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// connError is a failure to reach the master (exit status 2).
type connError struct {
	msg string
	err error
}

func (e *connError) Error() string { return e.msg }
func (e *connError) Unwrap() error { return e.err }

// rpcError turns a gRPC error into an exitError: the master's refusals of
// bad input (InvalidArgument) and connection loss are usage/connection
// errors (2); anything else the master reports is a failure (1).
func rpcError(socket, what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: %w", what, err)}
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return &exitError{code: exitUsage, err: fmt.Errorf("%s", st.Message())}
	case codes.Unavailable:
		return &exitError{code: exitUsage, err: fmt.Errorf("no master is running at %s (%s)", socket, st.Message())}
	case codes.PermissionDenied, codes.Unauthenticated:
		return &exitError{code: exitUsage, err: fmt.Errorf("%s: master refused: %s", what, st.Message())}
	case codes.Unimplemented:
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: the master does not support this (%s)", what, st.Message())}
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("%s: %s", what, st.Message())}
}
