package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Result is what a state did or, from Check, would do: changes in Salt's
// shape and a Salt-worded comment. Empty Changes means already correct.
type Result struct {
	Changes map[string]any
	Comment string
}

func checkPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("specified file %q is not an absolute path", p)
	}
	return nil
}

func resolveOwner(user, group string) (uid, gid int, err error) {
	uid, gid = KeepOwner, KeepOwner
	if user != "" {
		if uid, err = LookupUID(user); err != nil {
			return
		}
	}
	if group != "" {
		if gid, err = LookupGID(group); err != nil {
			return
		}
	}
	return
}

// diffOwnership records mode/user/group changes of an existing fi.
func diffOwnership(fi fs.FileInfo, mode *fs.FileMode, user, group string, uid, gid int, ch map[string]any) (chmod, chown bool) {
	if mode != nil && modeBits(fi.Mode()) != *mode {
		ch["mode"] = FormatMode(*mode)
		chmod = true
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid != KeepOwner && int(st.Uid) != uid {
			ch["user"] = user
			chown = true
		}
		if gid != KeepOwner && int(st.Gid) != gid {
			ch["group"] = group
			chown = true
		}
	}
	return
}

// Managed is file.managed: contents, mode and owner of one regular file.
type Managed struct {
	Path     string
	Contents *string      // nil: contents are not managed
	Mode     *fs.FileMode // nil: keep, 0644 for a new file
	User     string
	Group    string
	Makedirs bool
	// Replace false leaves an existing file's contents alone (Salt's
	// replace: False); only mode and owner are then managed.
	Replace bool
}

type managedPlan struct {
	real      string
	exists    bool
	write     bool
	chmod     bool
	chown     bool
	uid, gid  int
	changes   map[string]any
	parentDir string
}

func (m Managed) plan() (managedPlan, error) {
	p := managedPlan{changes: map[string]any{}}
	if err := checkPath(m.Path); err != nil {
		return p, err
	}
	var err error
	if p.uid, p.gid, err = resolveOwner(m.User, m.Group); err != nil {
		return p, fmt.Errorf("%s: %w", m.Path, err)
	}
	// Follow a symlink at Path, as Salt's follow_symlinks default does.
	p.real = m.Path
	if r, err := filepath.EvalSymlinks(m.Path); err == nil {
		p.real = r
	}
	fi, err := os.Stat(p.real)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.parentDir = filepath.Dir(p.real)
		if _, err := os.Stat(p.parentDir); err != nil && !m.Makedirs {
			return p, fmt.Errorf("parent directory %s of %s not present (set makedirs: True)", p.parentDir, m.Path)
		}
		p.write = true
		p.changes["diff"] = "New file"
		if m.Mode != nil {
			p.changes["mode"] = FormatMode(*m.Mode)
		}
		return p, nil
	case err != nil:
		return p, fmt.Errorf("%s: %w", m.Path, err)
	case fi.IsDir():
		return p, fmt.Errorf("specified target %s is a directory", m.Path)
	case !fi.Mode().IsRegular():
		return p, fmt.Errorf("specified target %s is not a regular file (%s)", m.Path, fi.Mode().Type())
	}
	p.exists = true
	if m.Contents != nil && m.Replace {
		cur, err := os.ReadFile(p.real)
		if err != nil {
			return p, fmt.Errorf("read %s: %w", m.Path, err)
		}
		if string(cur) != *m.Contents {
			p.write = true
			if IsBinary(cur) || IsBinary([]byte(*m.Contents)) {
				p.changes["diff"] = "Replace binary file"
			} else {
				p.changes["diff"] = UnifiedDiff(string(cur), *m.Contents)
			}
		}
	}
	p.chmod, p.chown = diffOwnership(fi, m.Mode, m.User, m.Group, p.uid, p.gid, p.changes)
	return p, nil
}

// Check reports what Apply would change.
func (m Managed) Check() (Result, error) {
	p, err := m.plan()
	if err != nil {
		return Result{}, err
	}
	if len(p.changes) == 0 {
		return Result{Comment: fmt.Sprintf("File %s is in the correct state", m.Path)}, nil
	}
	return Result{Changes: p.changes, Comment: fmt.Sprintf("The file %s is set to be changed", m.Path)}, nil
}

// Apply makes the file as specified.
func (m Managed) Apply() (Result, error) {
	p, err := m.plan()
	if err != nil {
		return Result{}, err
	}
	if len(p.changes) == 0 {
		return Result{Comment: fmt.Sprintf("File %s is in the correct state", m.Path)}, nil
	}
	if p.write {
		if !p.exists && m.Makedirs {
			if err := os.MkdirAll(p.parentDir, 0o755); err != nil {
				return Result{}, fmt.Errorf("makedirs for %s: %w", m.Path, err)
			}
		}
		var data []byte
		if m.Contents != nil && (m.Replace || !p.exists) {
			data = []byte(*m.Contents)
		} else if p.exists {
			if data, err = os.ReadFile(p.real); err != nil {
				return Result{}, fmt.Errorf("read %s: %w", m.Path, err)
			}
		}
		perm, uid, gid := fs.FileMode(0o644), p.uid, p.gid
		if fi, err := os.Stat(p.real); err == nil {
			perm = modeBits(fi.Mode())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				if uid == KeepOwner {
					uid = int(st.Uid)
				}
				if gid == KeepOwner {
					gid = int(st.Gid)
				}
			}
		}
		if m.Mode != nil {
			perm = *m.Mode
		}
		if err := WriteAtomic(p.real, data, perm, uid, gid); err != nil {
			return Result{}, err
		}
	} else {
		if p.chmod {
			if err := os.Chmod(p.real, *m.Mode); err != nil {
				return Result{}, fmt.Errorf("chmod %s: %w", m.Path, err)
			}
		}
		if p.chown {
			if err := os.Chown(p.real, p.uid, p.gid); err != nil {
				return Result{}, fmt.Errorf("chown %s: %w", m.Path, err)
			}
		}
	}
	return Result{Changes: p.changes, Comment: fmt.Sprintf("File %s updated", m.Path)}, nil
}

// Directory is file.directory.
type Directory struct {
	Path     string
	Mode     *fs.FileMode
	User     string
	Group    string
	Makedirs bool
}

func (d Directory) plan() (exists, chmod, chown bool, uid, gid int, ch map[string]any, err error) {
	ch = map[string]any{}
	if err = checkPath(d.Path); err != nil {
		return
	}
	if uid, gid, err = resolveOwner(d.User, d.Group); err != nil {
		err = fmt.Errorf("%s: %w", d.Path, err)
		return
	}
	fi, serr := os.Stat(d.Path)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		if _, perr := os.Stat(filepath.Dir(d.Path)); perr != nil && !d.Makedirs {
			err = fmt.Errorf("no directory to create %s in (set makedirs: True)", d.Path)
			return
		}
		ch[d.Path] = "New Dir"
		if d.Mode != nil {
			ch["mode"] = FormatMode(*d.Mode)
		}
		return
	case serr != nil:
		err = fmt.Errorf("%s: %w", d.Path, serr)
		return
	case !fi.IsDir():
		err = fmt.Errorf("specified location %s exists and is not a directory", d.Path)
		return
	}
	exists = true
	chmod, chown = diffOwnership(fi, d.Mode, d.User, d.Group, uid, gid, ch)
	return
}

// Check reports what Apply would change.
func (d Directory) Check() (Result, error) {
	_, _, _, _, _, ch, err := d.plan()
	if err != nil {
		return Result{}, err
	}
	if len(ch) == 0 {
		return Result{Comment: fmt.Sprintf("The directory %s is in the correct state", d.Path)}, nil
	}
	return Result{Changes: ch, Comment: fmt.Sprintf("The directory %s is set to be changed", d.Path)}, nil
}

// Apply creates or fixes the directory.
func (d Directory) Apply() (Result, error) {
	exists, chmod, chown, uid, gid, ch, err := d.plan()
	if err != nil {
		return Result{}, err
	}
	if len(ch) == 0 {
		return Result{Comment: fmt.Sprintf("The directory %s is in the correct state", d.Path)}, nil
	}
	if !exists {
		mk := os.Mkdir
		if d.Makedirs {
			mk = os.MkdirAll
		}
		if err := mk(d.Path, 0o755); err != nil {
			return Result{}, fmt.Errorf("create directory %s: %w", d.Path, err)
		}
		chmod = d.Mode != nil // the umask may have cut bits off
		chown = uid != KeepOwner || gid != KeepOwner
	}
	if chmod {
		if err := os.Chmod(d.Path, *d.Mode); err != nil {
			return Result{}, fmt.Errorf("chmod %s: %w", d.Path, err)
		}
	}
	if chown {
		if err := os.Chown(d.Path, uid, gid); err != nil {
			return Result{}, fmt.Errorf("chown %s: %w", d.Path, err)
		}
	}
	return Result{Changes: ch, Comment: fmt.Sprintf("Directory %s updated", d.Path)}, nil
}

// Symlink is file.symlink.
type Symlink struct {
	Path     string
	Target   string
	Force    bool // replace a file or directory standing where the link goes
	Makedirs bool
	User     string
	Group    string
}

func (s Symlink) plan() (ch map[string]any, replaceDir bool, uid, gid int, err error) {
	ch = map[string]any{}
	if err = checkPath(s.Path); err != nil {
		return
	}
	if s.Target == "" {
		err = fmt.Errorf("file.symlink %s: target is required", s.Path)
		return
	}
	if uid, gid, err = resolveOwner(s.User, s.Group); err != nil {
		err = fmt.Errorf("%s: %w", s.Path, err)
		return
	}
	fi, lerr := os.Lstat(s.Path)
	switch {
	case errors.Is(lerr, fs.ErrNotExist):
		if _, perr := os.Stat(filepath.Dir(s.Path)); perr != nil && !s.Makedirs {
			err = fmt.Errorf("directory %s for symlink is not present (set makedirs: True)", filepath.Dir(s.Path))
			return
		}
		ch["new"] = s.Path
		return
	case lerr != nil:
		err = fmt.Errorf("%s: %w", s.Path, lerr)
		return
	case fi.Mode()&fs.ModeSymlink != 0:
		cur, rerr := os.Readlink(s.Path)
		if rerr != nil {
			err = fmt.Errorf("readlink %s: %w", s.Path, rerr)
			return
		}
		if cur != s.Target {
			ch["change"] = s.Path
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if uid != KeepOwner && int(st.Uid) != uid {
				ch["user"] = s.User
			}
			if gid != KeepOwner && int(st.Gid) != gid {
				ch["group"] = s.Group
			}
		}
		return
	case !s.Force:
		err = fmt.Errorf("file exists where the symlink %s should be (set force: True to replace it)", s.Path)
		return
	}
	ch["new"] = s.Path
	ch["forced"] = fmt.Sprintf("%s %s was replaced", kindOf(fi), s.Path)
	replaceDir = fi.IsDir()
	return
}

func kindOf(fi fs.FileInfo) string {
	if fi.IsDir() {
		return "directory"
	}
	return "file"
}

// Check reports what Apply would change.
func (s Symlink) Check() (Result, error) {
	ch, _, _, _, err := s.plan()
	if err != nil {
		return Result{}, err
	}
	if len(ch) == 0 {
		return Result{Comment: fmt.Sprintf("Symlink %s is present and owned by the correct user", s.Path)}, nil
	}
	return Result{Changes: ch, Comment: fmt.Sprintf("Symlink %s to %s is set for creation", s.Path, s.Target)}, nil
}

// Apply creates or repoints the link. A new link is made under a temp name
// and renamed over the old one, so the path never stops resolving.
func (s Symlink) Apply() (Result, error) {
	ch, replaceDir, uid, gid, err := s.plan()
	if err != nil {
		return Result{}, err
	}
	if len(ch) == 0 {
		return Result{Comment: fmt.Sprintf("Symlink %s is present and owned by the correct user", s.Path)}, nil
	}
	dir := filepath.Dir(s.Path)
	if s.Makedirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Result{}, fmt.Errorf("makedirs for %s: %w", s.Path, err)
		}
	}
	_, relink := ch["new"]
	_, relink2 := ch["change"]
	if relink || relink2 {
		tmp, err := tempSymlink(s.Target, dir, filepath.Base(s.Path))
		if err != nil {
			return Result{}, err
		}
		if replaceDir {
			// rename(2) cannot put a link over a directory.
			if err := os.RemoveAll(s.Path); err != nil {
				os.Remove(tmp)
				return Result{}, fmt.Errorf("remove directory %s: %w", s.Path, err)
			}
		}
		if err := os.Rename(tmp, s.Path); err != nil {
			os.Remove(tmp)
			return Result{}, fmt.Errorf("rename symlink into %s: %w", s.Path, err)
		}
		if err := SyncDir(dir); err != nil {
			return Result{}, err
		}
	}
	if uid != KeepOwner || gid != KeepOwner {
		if err := os.Lchown(s.Path, uid, gid); err != nil {
			return Result{}, fmt.Errorf("lchown %s: %w", s.Path, err)
		}
	}
	comment := fmt.Sprintf("Created new symlink %s -> %s", s.Path, s.Target)
	if _, ok := ch["change"]; ok {
		comment = fmt.Sprintf("Set symlink %s to point to %s", s.Path, s.Target)
	}
	return Result{Changes: ch, Comment: comment}, nil
}

func tempSymlink(target, dir, base string) (string, error) {
	for i := 0; i < 100; i++ {
		name := filepath.Join(dir, fmt.Sprintf(".%s.brine-%d-%d", base, os.Getpid(), i))
		err := os.Symlink(target, name)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create symlink beside %s: %w", filepath.Join(dir, base), err)
		}
	}
	return "", fmt.Errorf("create symlink beside %s: no free temp name", filepath.Join(dir, base))
}

// Absent is file.absent: the path, whatever it is, removed (directories
// recursively; a symlink itself, never what it points at).
type Absent struct{ Path string }

func (a Absent) plan() (bool, error) {
	if err := checkPath(a.Path); err != nil {
		return false, err
	}
	if filepath.Clean(a.Path) == "/" {
		return false, fmt.Errorf("refusing to make \"/\" absent")
	}
	_, err := os.Lstat(a.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", a.Path, err)
	}
	return true, nil
}

// Check reports whether Apply would remove something.
func (a Absent) Check() (Result, error) {
	present, err := a.plan()
	if err != nil {
		return Result{}, err
	}
	if !present {
		return Result{Comment: fmt.Sprintf("File %s is not present", a.Path)}, nil
	}
	return Result{Changes: map[string]any{"removed": a.Path}, Comment: fmt.Sprintf("File %s is set for removal", a.Path)}, nil
}

// Apply removes the path.
func (a Absent) Apply() (Result, error) {
	present, err := a.plan()
	if err != nil {
		return Result{}, err
	}
	if !present {
		return Result{Comment: fmt.Sprintf("File %s is not present", a.Path)}, nil
	}
	if err := os.RemoveAll(a.Path); err != nil {
		return Result{}, fmt.Errorf("remove %s: %w", a.Path, err)
	}
	return Result{Changes: map[string]any{"removed": a.Path}, Comment: fmt.Sprintf("Removed file %s", a.Path)}, nil
}
