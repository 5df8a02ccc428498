// Package file implements brine's file states (file.managed,
// file.directory, file.symlink, file.absent) and the atomic replace that
// every brine writer of a system file goes through.
//
// Each state separates Check (what would change, touching nothing) from
// Apply (make it so), so test=True runs exactly the Check that a real run
// starts with.
package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// KeepOwner is passed as uid or gid to leave the owner as the process
// creates it.
const KeepOwner = -1

// WriteAtomic replaces path with data so that a reader sees either the old
// or the new file, never a torn one: a temp file in the same directory is
// written, fsynced, given perm and owner, renamed over path, and the
// directory is fsynced so the rename itself survives a crash.
func WriteAtomic(path string, data []byte, perm fs.FileMode, uid, gid int) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".brine-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// chmod on the descriptor: CreateTemp's 0600 and the umask must not
	// leak into the result.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: chmod: %w", path, err)
	}
	if uid != KeepOwner || gid != KeepOwner {
		if err := tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: chown: %w", path, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
			// A bind-mounted file (Docker's /etc/hosts) cannot be
			// renamed over; writing in place is the only way left. The
			// fsynced temp stays as the recovery copy until the in-place
			// write is durable: a crash in between leaves the intended
			// content beside the file, never only a torn file.
			ok = true
			if err := writeInPlace(path, data); err != nil {
				return fmt.Errorf("%w (the intended content is in %s)", err, tmpName)
			}
			os.Remove(tmpName)
			return nil
		}
		return fmt.Errorf("write %s: rename: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

func writeInPlace(path string, data []byte) error {
	// Not O_TRUNC: overwrite from the start, then cut to the new length,
	// so a crash mid-way leaves the new bytes followed by the old tail
	// rather than an empty file.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %s in place: %w", path, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s in place: %w", path, err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return fmt.Errorf("write %s in place: truncate: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s in place: fsync: %w", path, err)
	}
	return f.Close()
}

// ReplaceAtomic is WriteAtomic that keeps the existing file's mode and
// owner (0644 and the process's owner for a new file). A symlink at path
// is followed so the link itself survives, as an editor would do.
func ReplaceAtomic(path string, data []byte) error {
	real := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}
	perm, uid, gid := fs.FileMode(0o644), KeepOwner, KeepOwner
	if fi, err := os.Stat(real); err == nil {
		perm = fi.Mode().Perm() | fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return WriteAtomic(real, data, perm, uid, gid)
}

// SyncDir fsyncs a directory so that entries just renamed into it are
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
