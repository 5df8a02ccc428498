// Package pkgstate implements pkg.installed on Debian-family minions:
// dpkg-query to check, apt-get install to apply.
package pkgstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
)

// Want is one package the state asks for; Version "" means any.
type Want struct {
	Name    string
	Version string
}

// Tools are the binaries used; zero values mean the system's.
type Tools struct {
	DpkgQuery string
	AptGet    string
}

func (t Tools) dpkgQuery() string {
	if t.DpkgQuery == "" {
		return "dpkg-query"
	}
	return t.DpkgQuery
}

func (t Tools) aptGet() string {
	if t.AptGet == "" {
		return "apt-get"
	}
	return t.AptGet
}

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$`)
	versionRe = regexp.MustCompile(`^[A-Za-z0-9.+~:_-]+$`)
)

// Validate refuses names and versions that are not Debian's, which also
// keeps anything apt-get could read as an option out of its argv.
func Validate(wants []Want) error {
	if len(wants) == 0 {
		return errors.New("pkg.installed: no packages given")
	}
	for _, w := range wants {
		if !nameRe.MatchString(w.Name) {
			return fmt.Errorf("pkg.installed: %q is not a valid package name", w.Name)
		}
		if w.Version != "" && (strings.HasPrefix(w.Version, "-") || !versionRe.MatchString(w.Version)) {
			return fmt.Errorf("pkg.installed %s: %q is not a valid version", w.Name, w.Version)
		}
	}
	return nil
}

// ParseDpkgQuery reads `dpkg-query -W -f '${Package}\t${Version}\t${db:Status-Abbrev}\n'`
// output into name -> version for installed packages only ("ii");
// half-installed and config-files-only packages count as absent.
func ParseDpkgQuery(out string) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" {
			continue
		}
		if strings.HasPrefix(f[2], "ii") {
			got[f[0]] = f[1]
		}
	}
	return got
}

// Query returns the installed version of each of names that is installed.
func (t Tools) Query(ctx context.Context, names []string) (map[string]string, error) {
	args := append([]string{"-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", "--"}, names...)
	c := exec.CommandContext(ctx, t.dpkgQuery(), args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	// Exit 1 only says some names matched nothing.
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return nil, fmt.Errorf("dpkg-query: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return ParseDpkgQuery(out.String()), nil
}

func baseName(n string) string {
	b, _, _ := strings.Cut(n, ":")
	return b
}

// plan returns the packages that need installing and the changes.
func (t Tools) plan(ctx context.Context, wants []Want) ([]Want, map[string]string, error) {
	if err := Validate(wants); err != nil {
		return nil, nil, err
	}
	names := make([]string, len(wants))
	for i, w := range wants {
		names[i] = w.Name
	}
	have, err := t.Query(ctx, names)
	if err != nil {
		return nil, nil, err
	}
	var todo []Want
	for _, w := range wants {
		v, ok := have[baseName(w.Name)]
		if !ok || (w.Version != "" && v != w.Version) {
			todo = append(todo, w)
		}
	}
	return todo, have, nil
}

func names(ws []Want) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.Name
	}
	return strings.Join(s, ", ")
}

// Check reports the packages that would be installed or changed:
// {name: {"old": installed version or "", "new": wanted version or "latest"}}.
func (t Tools) Check(ctx context.Context, wants []Want) (map[string]any, string, error) {
	todo, have, err := t.plan(ctx, wants)
	if err != nil {
		return nil, "", err
	}
	if len(todo) == 0 {
		return nil, fmt.Sprintf("All specified packages are already installed: %s", names(wants)), nil
	}
	ch := map[string]any{}
	for _, w := range todo {
		nv := w.Version
		if nv == "" {
			nv = "latest"
		}
		ch[w.Name] = map[string]any{"old": have[baseName(w.Name)], "new": nv}
	}
	return ch, fmt.Sprintf("The following packages would be installed/updated: %s", names(todo)), nil
}

// Install runs apt-get install for the packages Check found missing,
// non-interactively and keeping local config files, then reports the
// versions that changed.
func (t Tools) Install(ctx context.Context, wants []Want, refresh bool) (map[string]any, string, error) {
	todo, have, err := t.plan(ctx, wants)
	if err != nil {
		return nil, "", err
	}
	if len(todo) == 0 {
		return nil, fmt.Sprintf("All specified packages are already installed: %s", names(wants)), nil
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none")
	if refresh {
		if err := t.apt(ctx, env, "update", "-q"); err != nil {
			return nil, "", err
		}
	}
	args := []string{"install", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
	for _, w := range todo {
		if w.Version != "" {
			args = append(args, w.Name+"="+w.Version)
		} else {
			args = append(args, w.Name)
		}
	}
	if err := t.apt(ctx, env, args...); err != nil {
		return nil, "", err
	}
	after, err := t.Query(ctx, namesOf(todo))
	if err != nil {
		return nil, "", err
	}
	ch := map[string]any{}
	var missing []string
	for _, w := range todo {
		b := baseName(w.Name)
		nv, ok := after[b]
		if !ok || (w.Version != "" && nv != w.Version) {
			missing = append(missing, w.Name)
			continue
		}
		if nv != have[b] {
			ch[w.Name] = map[string]any{"old": have[b], "new": nv}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return ch, "", fmt.Errorf("pkg.installed: apt-get succeeded but %s not installed as asked", strings.Join(missing, ", "))
	}
	return ch, fmt.Sprintf("The following packages were installed/updated: %s", names(todo)), nil
}

func namesOf(ws []Want) []string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.Name
	}
	return s
}

func (t Tools) apt(ctx context.Context, env []string, args ...string) error {
	c := exec.CommandContext(ctx, t.aptGet(), args...)
	c.Env = env
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		tail := out.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("apt-get %s: %w: %s", args[0], err, strings.TrimSpace(tail))
	}
	return nil
}
