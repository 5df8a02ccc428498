package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/brine-cm/brine/pkg/state/file"
)

// DefaultPath is the hosts file host states edit unless told otherwise.
const DefaultPath = "/etc/hosts"

// Read parses the hosts file at path; a missing file reads as empty.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read hosts file: %w", err)
	}
	return Parse(b), nil
}

// Check reports what Update would change, touching nothing.
func Check(path string, e Edit) (Changes, error) {
	f, err := Read(path)
	if err != nil {
		return Changes{}, err
	}
	ch, err := f.Apply(e)
	if err != nil {
		return Changes{}, fmt.Errorf("%s: %w", path, err)
	}
	return ch, nil
}

// Update applies e to the hosts file at path. Brine writers serialize on
// an flock of a lock file beside it, re-read under the lock and replace
// the file atomically, so concurrent brine edits never lose each other.
// A writer that does not take the lock (an editor, a DHCP hook) can still
// lose its write if it races our rename, as with any two editors.
func Update(ctx context.Context, path string, e Edit) (Changes, error) {
	real := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}
	unlock, err := lock(ctx, real)
	if err != nil {
		return Changes{}, err
	}
	defer unlock()
	f, err := Read(real)
	if err != nil {
		return Changes{}, err
	}
	ch, err := f.Apply(e)
	if err != nil {
		return Changes{}, fmt.Errorf("%s: %w", path, err)
	}
	if ch.Empty() {
		return ch, nil
	}
	if err := file.ReplaceAtomic(real, f.Bytes()); err != nil {
		return Changes{}, err
	}
	return ch, nil
}

// LockPath is the lock file guarding path: ".hosts.brine-lock" beside it.
// It is never removed; removing a lock file lets two writers hold
// "the" lock on different inodes.
func LockPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".brine-lock")
}

func lock(ctx context.Context, path string) (func(), error) {
	lp := LockPath(path)
	fd, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lp, err)
	}
	for {
		err := unix.Flock(int(fd.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				unix.Flock(int(fd.Fd()), unix.LOCK_UN)
				fd.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			fd.Close()
			return nil, fmt.Errorf("lock %s: %w", lp, err)
		}
		select {
		case <-ctx.Done():
			fd.Close()
			return nil, fmt.Errorf("lock %s: %w", lp, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
