//go:build !linux

package job

import (
	"errors"
	"io/fs"
	"path/filepath"
)

// syncTree fsyncs each saved record, its directory and dir itself, where
// there is no syncfs(2).
func syncTree(dir string, jids []string) error {
	var errs []error
	for _, jid := range jids {
		jobDir := filepath.Join(dir, jid)
		for _, p := range []string{filepath.Join(jobDir, jobFile), jobDir} {
			if err := syncFile(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := syncFile(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
