// Package render is the master side of states: it renders top files,
// pillar and SLS files (Jinja + YAML, as Salt does) for one minion and
// compiles the result into ordered low chunks (state.Chunk) with resolved
// requisites, so the minion only has to apply them.
package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/brine-cm/brine/pkg/jinja"
	"github.com/brine-cm/brine/pkg/pyrender"
)

// Matcher decides whether a top-file target matches a minion. The master
// injects the real one (pkg/target).
type Matcher interface {
	Match(expr, tgtType, id string, grains map[string]any) (bool, error)
}

// Funcs are the render-time salt[...] functions that need the master.
type Funcs interface {
	MineGet(ctx context.Context, requester, tgt, fun, tgtType string) (map[string]any, error)
}

// Tree is a state tree and a pillar tree, each in Salt's roots format:
// {"base": ["/srv/brine/states", ...]}; earlier roots win.
type Tree struct {
	FileRoots   map[string][]string
	PillarRoots map[string][]string
	Matcher     Matcher
	Funcs       Funcs
	Jinja       JinjaSettings
}

// JinjaSettings are the master's Jinja whitespace options: SLS for SLS,
// top and pillar files (jinja_sls_env), Files for file.managed templates
// (jinja_env). Salt's jinja_trim_blocks / jinja_lstrip_blocks set both.
type JinjaSettings struct {
	SLS, Files JinjaEnv
}

// JinjaEnv is Jinja's trim_blocks and lstrip_blocks; both off by default,
// as in Salt.
type JinjaEnv struct {
	TrimBlocks, LstripBlocks bool
}

// Minion is who the states are rendered for.
type Minion struct {
	ID     string
	Grains map[string]any
}

// Options are per-run settings, as on Salt's command line.
type Options struct {
	Saltenv string         // only this environment's top file and SLS; "" = all
	Pillar  map[string]any // pillar=... override, deep-merged on top
	Test    bool
}

const maxFileSize = 8 << 20

// ReadFile resolves salt://path (optionally ?saltenv=x) against the
// environment's file roots in order and returns the content and the file
// it came from. Paths that leave the root are refused.
func (t *Tree) ReadFile(saltenv, saltURL string) ([]byte, string, error) {
	return readFrom(t.FileRoots, saltenv, saltURL)
}

func readFrom(roots map[string][]string, saltenv, saltURL string) ([]byte, string, error) {
	rel, env, err := parseSaltURL(saltURL)
	if err != nil {
		return nil, "", err
	}
	if env == "" {
		env = saltenv
	}
	if env == "" {
		env = "base"
	}
	dirs, ok := roots[env]
	if !ok {
		return nil, "", fmt.Errorf("%s: no file roots for environment %q", saltURL, env)
	}
	for _, root := range dirs {
		p, err := securePath(root, rel)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", saltURL, err)
		}
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", saltURL, err)
		}
		return b, p, nil
	}
	return nil, "", fmt.Errorf("%s: %w in environment %q (roots %s)", saltURL, fs.ErrNotExist, env, strings.Join(dirs, ", "))
}

func parseSaltURL(s string) (rel, env string, err error) {
	raw := s
	if strings.HasPrefix(s, "salt://") {
		s = strings.TrimPrefix(s, "salt://")
	} else if strings.Contains(s, "://") {
		return "", "", fmt.Errorf("%q: only salt:// URLs are served by the master", raw)
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		q, err := url.ParseQuery(s[i+1:])
		if err != nil {
			return "", "", fmt.Errorf("%q: %w", raw, err)
		}
		env = q.Get("saltenv")
		s = s[:i]
	}
	if strings.ContainsRune(s, 0) || strings.Contains(s, "\\") {
		return "", "", fmt.Errorf("%q: invalid path", raw)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return "", "", fmt.Errorf("%q: '..' is not allowed in salt:// paths", raw)
		}
	}
	rel = path.Clean("/" + s)[1:]
	if rel == "" {
		return "", "", fmt.Errorf("%q: empty path", raw)
	}
	return rel, env, nil
}

// securePath joins rel under root and returns "" if there is no regular
// file there. A symlink that resolves outside the root is an error.
func securePath(root, rel string) (string, error) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return "", nil
	}
	if st.Size() > maxFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes", p, maxFileSize)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", nil
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", nil
	}
	if r, err := filepath.Rel(realRoot, real); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s resolves outside its root %s", p, root)
	}
	return p, nil
}

// slsFile finds the file for a dotted SLS name: a.b -> a/b.sls or
// a/b/init.sls.
func slsFile(roots map[string][]string, env, sls string) ([]byte, string, error) {
	if sls == "" || strings.ContainsAny(sls, "/\\") || strings.Contains(sls, "..") {
		return nil, "", fmt.Errorf("invalid SLS name %q", sls)
	}
	rel := strings.ReplaceAll(sls, ".", "/")
	for _, cand := range []string{rel + ".sls", rel + "/init.sls"} {
		b, p, err := readFrom(roots, env, "salt://"+cand)
		if err == nil {
			return b, p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("SLS %q not found in environment %q: %w", sls, env, fs.ErrNotExist)
}

// envs lists the environments of a roots map, base first.
func envs(roots map[string][]string) []string {
	out := make([]string, 0, len(roots))
	for e := range roots {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "base":
			return -1
		case b == "base":
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

// renderSource runs the renderer pipeline named by the shebang line.
func renderSource(file string, src []byte, vars map[string]any, jopts jinja.Options) (any, error) {
	text := string(src)
	pipeline := []string{"jinja", "yaml"}
	if strings.HasPrefix(text, "#!") {
		line, rest, _ := strings.Cut(text, "\n")
		pipeline = nil
		for _, r := range strings.Split(strings.TrimSpace(line[2:]), "|") {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			pipeline = append(pipeline, r)
		}
		// Keep line numbers right for the renderers that follow.
		text = "\n" + rest
	}
	if len(pipeline) == 0 {
		return nil, fmt.Errorf("%s: empty renderer line", file)
	}
	if len(pipeline) == 1 && pipeline[0] == "py" {
		return renderPy(file, src, vars)
	}
	for i, r := range pipeline {
		switch r {
		case "jinja":
			if i != 0 {
				return nil, fmt.Errorf("%s: renderer %q must come first in %q", file, r, strings.Join(pipeline, "|"))
			}
			out, err := jinja.RenderOptions(file, text, vars, jopts)
			if err != nil {
				return nil, err
			}
			text = out
		case "yaml":
			if i != len(pipeline)-1 {
				return nil, fmt.Errorf("%s: renderer %q must come last in %q", file, r, strings.Join(pipeline, "|"))
			}
			return parseYAML(file, []byte(text))
		default:
			return nil, fmt.Errorf("%s: unknown renderer %q (brine supports jinja and yaml)", file, r)
		}
	}
	return nil, fmt.Errorf("%s: renderer pipeline %q does not end in yaml", file, strings.Join(pipeline, "|"))
}

// renderPy runs Salt's #!py renderer (pkg/pyrender, on Starlark) with the
// same context a Jinja template gets, and returns run()'s dict as the
// YAML renderer would have decoded it, so the compiler cannot tell them
// apart.
func renderPy(file string, src []byte, vars map[string]any) (any, error) {
	asMap := func(v any) map[string]any {
		m, _ := plain(v).(map[string]any)
		return m
	}
	salt, _ := vars["salt"].(map[string]any)
	env, _ := vars["saltenv"].(string)
	sls, _ := vars["sls"].(string)
	out, err := pyrender.Run(context.Background(), file, src, pyrender.Globals{
		Salt: salt, Grains: asMap(vars["grains"]), Pillar: asMap(vars["pillar"]), Opts: asMap(vars["opts"]),
		Saltenv: env, SLS: sls,
	}, pyrender.Limits{})
	if err != nil {
		return nil, err
	}
	return fromPy(out), nil
}

func fromPy(v any) any {
	switch x := v.(type) {
	case *pyrender.Dict:
		m := newOmap()
		for _, k := range x.Keys {
			m.set(k, fromPy(x.Vals[k]), pos{})
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromPy(e)
		}
		return out
	}
	return v
}
