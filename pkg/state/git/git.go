// Package git implements git.latest through the git command line. Git is
// always run with an argv (never a shell), with "--" before positional
// arguments, and URLs, revisions and names that could be read as options
// or select the ext:: transport are refused before git is started.
package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/brine-cm/brine/pkg/state/cmd"
)

// AllowedProtocols is exported to every git run as GIT_ALLOW_PROTOCOL,
// so even a URL that slipped past validation (a submodule's, say) cannot
// use ext:: or fd::.
const AllowedProtocols = "file:git:http:https:ssh"

// Spec is one git.latest call.
type Spec struct {
	URL        string
	Target     string
	Rev        string // branch, tag, commit or HEAD (default)
	Branch     string // local branch to check out; default the branch rev names
	Remote     string // default "origin"
	ForceReset bool   // discard local changes to reach rev
	Depth      int    // shallow clone/fetch depth; 0: full
	User       string // run git as this user
	Git        string // git binary; default "git"
}

var (
	transportRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`)
	revRe       = regexp.MustCompile(`^[A-Za-z0-9_./@{}^~+-]+$`)
	remoteRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	hexRe       = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
)

// Validate refuses anything git could take as an option or a dangerous
// transport.
func (s Spec) Validate() error {
	u := s.URL
	switch {
	case u == "":
		return errors.New("git.latest: name (the repository URL) is required")
	case strings.HasPrefix(u, "-"):
		return fmt.Errorf("git.latest: URL %q starts with '-' and would be read as an option", u)
	case transportRe.MatchString(u):
		return fmt.Errorf("git.latest: URL %q uses a transport helper (<transport>::); only %s are allowed", u, strings.ReplaceAll(AllowedProtocols, ":", ", "))
	case strings.Contains(u, "--upload-pack") || strings.Contains(u, "--receive-pack") || strings.Contains(u, "--config"):
		return fmt.Errorf("git.latest: URL %q carries a git option", u)
	case strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("git.latest: URL %q contains control characters", u)
	}
	if !filepath.IsAbs(s.Target) {
		return fmt.Errorf("git.latest %s: target %q must be an absolute path", u, s.Target)
	}
	for _, r := range []struct{ what, v string }{{"rev", s.Rev}, {"branch", s.Branch}} {
		if r.v == "" {
			continue
		}
		if strings.HasPrefix(r.v, "-") || strings.Contains(r.v, "..") || !revRe.MatchString(r.v) {
			return fmt.Errorf("git.latest %s: %s %q is not a valid revision name", u, r.what, r.v)
		}
	}
	if s.Remote != "" && !remoteRe.MatchString(s.Remote) {
		return fmt.Errorf("git.latest %s: remote %q is not a valid remote name", u, s.Remote)
	}
	if s.Depth < 0 {
		return fmt.Errorf("git.latest %s: depth %d is negative", u, s.Depth)
	}
	return nil
}

func (s Spec) remote() string {
	if s.Remote == "" {
		return "origin"
	}
	return s.Remote
}

func (s Spec) rev() string {
	if s.Rev == "" {
		return "HEAD"
	}
	return s.Rev
}

// git runs git with argv; dir "" runs outside any repository.
func (s Spec) git(ctx context.Context, dir string, args ...string) (string, error) {
	bin := s.Git
	if bin == "" {
		bin = "git"
	}
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(os.Environ(),
		"GIT_ALLOW_PROTOCOL="+AllowedProtocols,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"LC_ALL=C",
	)
	if os.Getenv("GIT_SSH_COMMAND") == "" {
		c.Env = append(c.Env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	if s.User != "" {
		cred, env, err := cmd.Credential(s.User)
		if err != nil {
			return "", fmt.Errorf("git.latest %s: %w", s.URL, err)
		}
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		c.Env = append(c.Env, env...)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// target is where rev resolves on the remote.
type target struct {
	sha    string // full or, for a commit rev, possibly abbreviated
	branch string // remote branch name, "" for a tag or commit
	tag    bool
}

func (s Spec) resolve(ctx context.Context) (target, error) {
	rev := s.rev()
	out, err := s.git(ctx, "", "ls-remote", "--symref", "--", s.URL)
	if err != nil {
		return target{}, fmt.Errorf("git.latest: cannot list %s: %w", s.URL, err)
	}
	refs := ParseLsRemote(out)
	switch {
	case rev == "HEAD":
		if refs.Refs["HEAD"] == "" {
			return target{}, fmt.Errorf("git.latest: %s has no HEAD (empty repository?)", s.URL)
		}
		return target{sha: refs.Refs["HEAD"], branch: strings.TrimPrefix(refs.HeadRef, "refs/heads/")}, nil
	case refs.Refs["refs/heads/"+rev] != "":
		return target{sha: refs.Refs["refs/heads/"+rev], branch: rev}, nil
	case refs.Refs["refs/tags/"+rev+"^{}"] != "":
		return target{sha: refs.Refs["refs/tags/"+rev+"^{}"], tag: true}, nil
	case refs.Refs["refs/tags/"+rev] != "":
		return target{sha: refs.Refs["refs/tags/"+rev], tag: true}, nil
	case strings.HasPrefix(rev, "refs/heads/") && refs.Refs[rev] != "":
		return target{sha: refs.Refs[rev], branch: strings.TrimPrefix(rev, "refs/heads/")}, nil
	case hexRe.MatchString(rev):
		return target{sha: rev}, nil
	}
	return target{}, fmt.Errorf("git.latest: revision %q not found on %s", rev, s.URL)
}

// LsRemote is parsed `git ls-remote --symref` output.
type LsRemote struct {
	HeadRef string            // "refs/heads/main" that HEAD points at
	Refs    map[string]string // ref name -> sha
}

// ParseLsRemote reads `git ls-remote --symref` output; lines it does not
// understand are ignored.
func ParseLsRemote(out string) LsRemote {
	r := LsRemote{Refs: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		left, name, ok := strings.Cut(strings.TrimRight(line, "\r"), "\t")
		if !ok || name == "" {
			continue
		}
		if ref, isSym := strings.CutPrefix(left, "ref: "); isSym {
			if name == "HEAD" {
				r.HeadRef = ref
			}
			continue
		}
		if hexRe.MatchString(left) {
			r.Refs[name] = left
		}
	}
	return r
}

type plan struct {
	clone     bool
	existed   bool // the clone target was there (empty) before
	want      target
	head      string
	branch    string // local branch to be on, "" for detached
	curBranch string
	remoteURL string
	dirty     bool
	changes   map[string]any
}

func isEmptyDir(p string) (exists, empty bool, err error) {
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, true, nil
	}
	if err != nil {
		return true, false, err
	}
	return true, len(ents) == 0, nil
}

func (s Spec) plan(ctx context.Context) (plan, error) {
	p := plan{changes: map[string]any{}}
	if err := s.Validate(); err != nil {
		return p, err
	}
	want, err := s.resolve(ctx)
	if err != nil {
		return p, err
	}
	p.want = want
	p.branch = s.Branch
	if p.branch == "" {
		p.branch = want.branch
	}
	existed, empty, err := isEmptyDir(s.Target)
	if err != nil {
		return p, fmt.Errorf("git.latest: target %s: %w", s.Target, err)
	}
	if empty {
		p.clone = true
		p.existed = existed
		p.changes["new"] = s.URL + " => " + s.Target
		p.changes["revision"] = map[string]any{"old": nil, "new": want.sha}
		return p, nil
	}
	if _, err := os.Stat(filepath.Join(s.Target, ".git")); err != nil {
		return p, fmt.Errorf("git.latest: target %s exists, is not empty and is not a git checkout", s.Target)
	}
	head, err := s.git(ctx, s.Target, "rev-parse", "--verify", "--quiet", "HEAD")
	if err == nil {
		p.head = strings.TrimSpace(head)
	}
	if b, err := s.git(ctx, s.Target, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		p.curBranch = strings.TrimSpace(b)
	}
	url, _ := s.git(ctx, s.Target, "config", "--get", "remote."+s.remote()+".url")
	p.remoteURL = strings.TrimSpace(url)
	if p.remoteURL != s.URL {
		p.changes["remote"] = map[string]any{"old": p.remoteURL, "new": s.URL}
	}
	if !strings.HasPrefix(p.head, want.sha) {
		p.changes["revision"] = map[string]any{"old": p.head, "new": want.sha}
	}
	if p.branch != p.curBranch {
		p.changes["branch"] = map[string]any{"old": p.curBranch, "new": p.branch}
	}
	st, err := s.git(ctx, s.Target, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return p, fmt.Errorf("git.latest: %w", err)
	}
	p.dirty = strings.TrimSpace(st) != ""
	if p.dirty {
		if !s.ForceReset {
			if len(p.changes) > 0 {
				return p, fmt.Errorf("git.latest: %s has local changes; set force_reset: True to discard them", s.Target)
			}
		} else {
			p.changes["forced update"] = true
		}
	}
	return p, nil
}

// Check reports what Apply would do. It asks the remote for the revision
// (git ls-remote) but changes nothing locally.
func (s Spec) Check(ctx context.Context) (map[string]any, string, error) {
	p, err := s.plan(ctx)
	if err != nil {
		return nil, "", err
	}
	switch {
	case p.clone:
		return p.changes, fmt.Sprintf("Repository %s would be cloned to %s", s.URL, s.Target), nil
	case len(p.changes) == 0:
		return nil, fmt.Sprintf("Repository %s is up-to-date", s.Target), nil
	}
	return p.changes, fmt.Sprintf("Repository %s would be updated to %s", s.Target, p.want.sha), nil
}

// Apply clones or updates the checkout to rev. A fresh clone that cannot
// reach rev (a commit the remote does not have) is removed again, so the
// target is left as it was found and the next run clones afresh instead
// of finding a checkout of some other commit there.
func (s Spec) Apply(ctx context.Context) (map[string]any, string, error) {
	p, err := s.plan(ctx)
	if err != nil {
		return nil, "", err
	}
	if len(p.changes) == 0 {
		return nil, fmt.Sprintf("Repository %s is up-to-date", s.Target), nil
	}
	ch, comment, err := s.apply(ctx, p)
	if err != nil && p.clone {
		if rerr := s.undoClone(p.existed); rerr != nil {
			err = fmt.Errorf("%w (and removing the failed clone: %v)", err, rerr)
		}
	}
	return ch, comment, err
}

// undoClone empties (or, if Apply created it, removes) the target.
func (s Spec) undoClone(existed bool) error {
	if !existed {
		if err := os.RemoveAll(s.Target); err != nil {
			return err
		}
		return nil
	}
	ents, err := os.ReadDir(s.Target)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.Target, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (s Spec) apply(ctx context.Context, p plan) (map[string]any, string, error) {
	depth := []string{}
	if s.Depth > 0 {
		depth = []string{"--depth", fmt.Sprint(s.Depth)}
	}
	if p.clone {
		args := append([]string{"clone", "--origin", s.remote()}, depth...)
		if p.want.branch != "" {
			args = append(args, "--branch", p.want.branch)
		} else if p.want.tag {
			args = append(args, "--branch", s.rev())
		}
		args = append(args, "--", s.URL, s.Target)
		if _, err := s.git(ctx, "", args...); err != nil {
			return nil, "", fmt.Errorf("git.latest: clone: %w", err)
		}
	} else {
		if p.remoteURL != s.URL {
			if _, err := s.git(ctx, s.Target, "config", "remote."+s.remote()+".url", s.URL); err != nil {
				return nil, "", fmt.Errorf("git.latest: %w", err)
			}
		}
		args := append(append([]string{"fetch", "--tags", "--force"}, depth...), "--", s.remote())
		if _, err := s.git(ctx, s.Target, args...); err != nil {
			return nil, "", fmt.Errorf("git.latest: fetch: %w", err)
		}
	}
	if _, err := s.git(ctx, s.Target, "cat-file", "-e", p.want.sha+"^{commit}"); err != nil {
		// A commit no fetched branch reaches (or beyond a shallow depth).
		args := append(append([]string{"fetch"}, depth...), "--", s.remote(), p.want.sha)
		if _, err := s.git(ctx, s.Target, args...); err != nil {
			return nil, "", fmt.Errorf("git.latest: revision %s not available: %w", p.want.sha, err)
		}
	}
	co := []string{"checkout", "--quiet"}
	if s.ForceReset {
		co = append(co, "--force")
	}
	if p.branch != "" {
		co = append(co, "-B", p.branch, p.want.sha, "--")
	} else {
		co = append(co, "--detach", p.want.sha, "--")
	}
	if _, err := s.git(ctx, s.Target, co...); err != nil {
		return nil, "", fmt.Errorf("git.latest: checkout: %w", err)
	}
	if s.ForceReset {
		if _, err := s.git(ctx, s.Target, "reset", "--hard", "--quiet", p.want.sha, "--"); err != nil {
			return nil, "", fmt.Errorf("git.latest: reset: %w", err)
		}
	}
	head, err := s.git(ctx, s.Target, "rev-parse", "HEAD")
	if err != nil {
		return nil, "", fmt.Errorf("git.latest: %w", err)
	}
	newHead := strings.TrimSpace(head)
	ch := p.changes
	if p.head != newHead {
		var old any
		if p.head != "" {
			old = p.head
		}
		ch["revision"] = map[string]any{"old": old, "new": newHead}
	}
	if p.clone {
		return ch, fmt.Sprintf("Repository %s cloned to %s", s.URL, s.Target), nil
	}
	return ch, fmt.Sprintf("Repository %s updated", s.Target), nil
}
