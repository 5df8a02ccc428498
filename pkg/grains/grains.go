// Package grains gathers a minion's static facts the way Salt's core grains
// do (os, kernel, cpu, memory, network) and merges them with the static
// grains an operator sets in the minion config.
package grains

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Version is brine's version, reported as the brineversion grain and by
// test.version. Release builds set it with
// -ldflags "-X github.com/brine-cm/brine/pkg/grains.Version=...".
var Version = "0.1.0-dev"

// source is where Core reads from: the real root in production, a
// testdata tree in tests of the file-derived grains.
type source struct {
	root       string
	uname      func() (unix.Utsname, error)
	interfaces func(context.Context) ([]Interface, error)
	hostname   func() (string, error)
}

func realSource() source {
	return source{
		root: "/",
		uname: func() (unix.Utsname, error) {
			var u unix.Utsname
			err := unix.Uname(&u)
			return u, err
		},
		interfaces: Interfaces,
		hostname:   os.Hostname,
	}
}

// Core gathers the core grains of this machine. The id grain is left to
// the minion, which knows its configured id.
//
// A source that cannot be read (a missing /etc/os-release in a container,
// say) does not stop the others: the returned map is always usable and the
// error, when non-nil, names every source that failed.
func Core(ctx context.Context) (map[string]any, error) {
	return core(ctx, realSource())
}

func core(ctx context.Context, src source) (map[string]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g := map[string]any{
		"kernel":       "Linux",
		"num_cpus":     runtime.NumCPU(),
		"brineversion": Version,
		"pid":          os.Getpid(),
		"path":         os.Getenv("PATH"),
		"shell":        "/bin/sh",
	}
	var errs []error

	u, err := src.uname()
	if err != nil {
		errs = append(errs, fmt.Errorf("uname: %w", err))
	} else {
		g["kernel"] = cstr(u.Sysname[:])
		g["kernelrelease"] = cstr(u.Release[:])
		g["kernelversion"] = cstr(u.Version[:])
		g["cpuarch"] = cstr(u.Machine[:])
		g["nodename"] = cstr(u.Nodename[:])
	}
	cpuarch, _ := g["cpuarch"].(string)

	// No os-release at all (scratch containers) leaves os as "Linux", as
	// Salt does, without an error; a malformed one is reported.
	rel, err := readOSRelease(src.root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for k, v := range osGrains(rel, cpuarch) {
		g[k] = v
	}

	if f, err := os.Open(filepath.Join(src.root, "proc/meminfo")); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	} else {
		mi, err := ParseMeminfo(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name(), err))
		}
		// Salt reports MiB, rounded down.
		if v, ok := mi["MemTotal"]; ok {
			g["mem_total"] = int(v / 1024)
		}
		if v, ok := mi["SwapTotal"]; ok {
			g["swap_total"] = int(v / 1024)
		}
	}

	if f, err := os.Open(filepath.Join(src.root, "proc/cpuinfo")); err != nil {
		errs = append(errs, fmt.Errorf("cpu: %w", err))
	} else {
		ci, err := parseCPUInfo(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name(), err))
		}
		g["cpu_model"] = ci.Model
		flags := make([]any, len(ci.Flags))
		for i, fl := range ci.Flags {
			flags[i] = fl
		}
		g["cpu_flags"] = flags
	}

	// Many containers have no machine id; like Salt, leave the grain out.
	if id, err := readMachineID(src.root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	} else if err == nil {
		g["machine_id"] = id
	}

	if _, err := os.Stat(filepath.Join(src.root, "run/systemd/system")); err == nil {
		g["init"] = "systemd"
	} else {
		g["init"] = "unknown"
	}

	if cu, err := user.Current(); err == nil {
		g["username"] = cu.Username
		g["uid"], _ = strconv.Atoi(cu.Uid)
		g["gid"], _ = strconv.Atoi(cu.Gid)
		if grp, err := user.LookupGroupId(cu.Gid); err == nil {
			g["groupname"] = grp.Name
		}
	}

	hn, err := src.hostname()
	if err != nil {
		errs = append(errs, fmt.Errorf("hostname: %w", err))
	} else {
		host, _, _ := strings.Cut(hn, ".")
		fqdn := lookupFQDN(ctx, hn)
		g["host"] = host
		g["localhost"] = hn
		g["fqdn"] = fqdn
		domain := ""
		if _, d, ok := strings.Cut(fqdn, "."); ok {
			domain = d
		}
		g["domain"] = domain
	}

	ifcs, err := src.interfaces(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	for k, v := range networkGrains(ifcs) {
		g[k] = v
	}
	return g, errors.Join(errs...)
}

func readOSRelease(root string) (map[string]string, error) {
	// The spec's fallback order.
	var firstErr error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		path := filepath.Join(root, p)
		f, err := os.Open(path)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("os release: %w", err)
			}
			continue
		}
		rel, err := ParseOSRelease(f)
		f.Close()
		if err != nil {
			return rel, fmt.Errorf("%s: %w", path, err)
		}
		return rel, nil
	}
	return map[string]string{}, firstErr
}

func readMachineID(root string) (string, error) {
	var firstErr error
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("machine id: %w", err)
			}
			continue
		}
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("machine id: %s is empty", filepath.Join(root, p))
		}
		return id, nil
	}
	return "", firstErr
}

// lookupFQDN mirrors Python's socket.getfqdn, which Salt uses: the first
// dotted name among the host's own name and the names its addresses
// resolve back to, else the hostname itself. Bounded so a dead resolver
// cannot hold up minion start.
func lookupFQDN(ctx context.Context, hostname string) string {
	if strings.Contains(hostname, ".") {
		return hostname
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r := net.DefaultResolver
	addrs, err := r.LookupHost(ctx, hostname)
	if err != nil {
		return hostname
	}
	for _, a := range addrs {
		names, err := r.LookupAddr(ctx, a)
		if err != nil {
			continue
		}
		for _, n := range names {
			n = strings.TrimSuffix(n, ".")
			if strings.Contains(n, ".") && strings.HasPrefix(n, hostname+".") {
				return n
			}
		}
	}
	return hostname
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Merge returns core overlaid with static grains from the minion config.
// Static values win; where both sides hold a map the maps are merged key by
// key (Salt replaces the whole top-level value instead). Lists and scalars
// are replaced, never concatenated. Neither input is modified.
func Merge(core, static map[string]any) map[string]any {
	out := deepCopyMap(core)
	mergeInto(out, static)
	return out
}

func mergeInto(dst, src map[string]any) {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeInto(dm, sm)
				continue
			}
		}
		dst[k] = deepCopy(sv)
	}
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopy(v)
	}
	return out
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return deepCopyMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	case []string:
		return append([]string(nil), t...)
	}
	return v
}
