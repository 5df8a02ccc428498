package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/brine-cm/brine/pkg/state/file"
)

// DefaultPath is the hosts file host states edit unless told otherwise.
const DefaultPath = "/etc/hosts"

// Read parses the hosts file at path; a missing file reads as empty. A
// symlink at path is refused rather than followed: nobody asked brine to
// read (or later write) whatever file the link points at.
func Read(path string) (*File, error) {
	f, _, err := readNoFollow(path)
	return f, err
}

// ErrSymlink is returned when the hosts file is a symbolic link.
var ErrSymlink = errors.New("is a symbolic link; brine does not read or write through a link it was not asked to follow (set hosts_file to the link's target if that is what should be edited)")

// readNoFollow opens path with O_NOFOLLOW and returns its parsed content
// and identity (nil when it does not exist), so a writer can tell later
// whether the file it read is still the one at path.
func readNoFollow(path string) (*File, os.FileInfo, error) {
	fd, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{}, nil, nil
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, nil, fmt.Errorf("hosts file %s %w", path, ErrSymlink)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read hosts file: %w", err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read hosts file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("hosts file %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(fd, maxHostsBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read hosts file %s: %w", path, err)
	}
	if len(b) > maxHostsBytes {
		return nil, nil, fmt.Errorf("hosts file %s is larger than %d bytes", path, maxHostsBytes)
	}
	return Parse(b), fi, nil
}

// maxHostsBytes bounds what is read into memory; real hosts files with
// ad-block lists reach a few MiB.
const maxHostsBytes = 64 << 20

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
//
// The file at path is never followed through a symlink, and it must still
// be the file that was read when the new one is renamed over it. When the
// rename is impossible because path is a bind mount (Docker's /etc/hosts,
// EBUSY), the content is written in place and Changes.Method says so.
func Update(ctx context.Context, path string, e Edit) (Changes, error) {
	unlock, err := lock(ctx, path)
	if err != nil {
		return Changes{}, err
	}
	defer unlock()
	removeStaleTemps(path)
	f, orig, err := readNoFollow(path)
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
	how, err := replace(path, f.Bytes(), orig)
	if err != nil {
		return Changes{}, err
	}
	ch.Method = how
	return ch, nil
}

// MethodInPlace is Changes.Method after a bind-mounted hosts file was
// rewritten in place.
const MethodInPlace = "rewritten in place: bind mount"

const tempInfix = ".brine-tmp-"

// testHookBeforeRename lets tests swap the file between read and write.
var testHookBeforeRename func(path string)

// replace writes data to a temp file beside path (same mode and owner as
// orig), fsyncs it, checks that path is still orig, and renames it over
// path. A reader, or a crash, sees the old or the new file, never a mix.
func replace(path string, data []byte, orig os.FileInfo) (string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	keep := false
	defer func() {
		tmp.Close()
		if !keep {
			os.Remove(tmpName)
		}
	}()
	perm := fs.FileMode(0o644)
	if orig != nil {
		perm = orig.Mode().Perm()
	}
	if _, err := tmp.Write(data); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return "", fmt.Errorf("write %s: chmod: %w", path, err)
	}
	if orig != nil {
		if st, ok := orig.Sys().(*syscall.Stat_t); ok {
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return "", fmt.Errorf("write %s: chown: %w", path, err)
			}
		}
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if testHookBeforeRename != nil {
		testHookBeforeRename(path)
	}
	if err := unchanged(path, orig); err != nil {
		return "", err
	}
	err = os.Rename(tmpName, path)
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
		// The fsynced temp file stays until the in-place write is
		// durable: after a crash in between it holds the intended file.
		if started, err := writeInPlace(path, data, orig); err != nil {
			if !started {
				return "", err // path untouched: nothing to recover
			}
			keep = true
			return "", fmt.Errorf("%w (the intended content is in %s)", err, tmpName)
		}
		return MethodInPlace, nil
	}
	if err != nil {
		return "", fmt.Errorf("write %s: rename: %w", path, err)
	}
	keep = true // renamed: nothing left to remove
	if err := file.SyncDir(dir); err != nil {
		return "", err
	}
	return "", nil
}

// unchanged fails unless path is still the file read as orig (or still
// absent): a symlink or another file swapped in since is not overwritten.
func unchanged(path string, orig os.FileInfo) error {
	now, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && orig == nil:
		return nil
	case err != nil:
		return fmt.Errorf("write %s: %w", path, err)
	case now.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("write %s: replaced by a symbolic link since it was read; not written", path)
	case orig == nil || !sameVersion(orig, now):
		return fmt.Errorf("write %s: replaced by another file since it was read; not written", path)
	}
	return nil
}

// sameVersion: same inode and not changed since. Device and inode alone
// are not enough: a file removed and recreated often gets the freed inode
// number back, but never the old change time.
func sameVersion(a, b os.FileInfo) bool {
	if !os.SameFile(a, b) || a.Mode().Type() != b.Mode().Type() {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Ctim == sb.Ctim
}

// writeInPlace rewrites a file that cannot be renamed over: it writes the
// whole content from offset 0, then cuts the file to length and fsyncs, on
// a descriptor opened without following links and checked to be orig.
func writeInPlace(path string, data []byte, orig os.FileInfo) (started bool, err error) {
	fd, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("write %s in place: %w", path, err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return false, fmt.Errorf("write %s in place: %w", path, err)
	}
	if orig == nil || !sameVersion(orig, fi) || !fi.Mode().IsRegular() {
		return false, fmt.Errorf("write %s in place: replaced since it was read; not written", path)
	}
	if _, err := fd.WriteAt(data, 0); err != nil {
		return true, fmt.Errorf("write %s in place: %w", path, err)
	}
	if err := fd.Truncate(int64(len(data))); err != nil {
		return true, fmt.Errorf("write %s in place: truncate: %w", path, err)
	}
	if err := fd.Sync(); err != nil {
		return true, fmt.Errorf("write %s in place: fsync: %w", path, err)
	}
	return true, nil
}

// removeStaleTemps deletes temp files of writers killed mid-write. It runs
// under the lock, and every brine writer of this file holds it, so no temp
// file present now can belong to a live writer.
func removeStaleTemps(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "."+globEscape(base)+tempInfix+"*"))
	for _, p := range stale {
		os.Remove(p)
	}
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// LockPath is the lock file guarding path: ".hosts.brine-lock" beside it.
// It is never removed; removing a lock file lets two writers hold
// "the" lock on different inodes.
func LockPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".brine-lock")
}

func lock(ctx context.Context, path string) (func(), error) {
	lp := LockPath(path)
	fd, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
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
