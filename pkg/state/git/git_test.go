package git

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repo is a real bare repository with a working clone to commit from.
type repo struct {
	t    *testing.T
	bare string
	work string
	url  string
}

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", append([]string{"-c", "user.name=brine", "-c", "user.email=brine@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRepo(t *testing.T) *repo {
	d := t.TempDir()
	r := &repo{t: t, bare: filepath.Join(d, "origin.git"), work: filepath.Join(d, "work")}
	run(t, d, "init", "--bare", "--quiet", r.bare)
	run(t, d, "init", "--quiet", r.work)
	r.url = "file://" + r.bare
	run(t, r.work, "remote", "add", "origin", r.url)
	return r
}

func (r *repo) commit(file, content string) string {
	os.WriteFile(filepath.Join(r.work, file), []byte(content), 0o644)
	run(r.t, r.work, "add", file)
	run(r.t, r.work, "commit", "--quiet", "-m", "set "+file)
	run(r.t, r.work, "push", "--quiet", "origin", "HEAD:main")
	return run(r.t, r.work, "rev-parse", "HEAD")
}

func head(t *testing.T, dir string) string { return run(t, dir, "rev-parse", "HEAD") }

func revision(t *testing.T, ch map[string]any) (old, new any) {
	t.Helper()
	r, ok := ch["revision"].(map[string]any)
	if !ok {
		t.Fatalf("changes %v lack revision", ch)
	}
	return r["old"], r["new"]
}

func TestCloneThenUpdate(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	c1 := r.commit("a.txt", "one\n")
	target := filepath.Join(t.TempDir(), "checkout")
	s := Spec{URL: r.url, Target: target}

	ch, comment, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if old, nw := revision(t, ch); old != nil || nw != c1 || !strings.Contains(comment, "would be cloned") {
		t.Fatalf("check = %v %q", ch, comment)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("Check created the target")
	}
	ch, _, err = s.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, nw := revision(t, ch); nw != c1 || head(t, target) != c1 {
		t.Fatalf("apply = %v, head %s", ch, head(t, target))
	}
	if b := run(t, target, "symbolic-ref", "--short", "HEAD"); b != "main" {
		t.Fatalf("branch %s", b)
	}
	if ch, _, _ := s.Check(ctx); len(ch) != 0 {
		t.Fatalf("up-to-date checkout reports %v", ch)
	}

	c2 := r.commit("a.txt", "two\n")
	ch, _, err = s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if old, nw := revision(t, ch); old != c1 || nw != c2 {
		t.Fatalf("check after push = %v", ch)
	}
	if head(t, target) != c1 {
		t.Fatal("Check moved HEAD")
	}
	if _, _, err := s.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if head(t, target) != c2 {
		t.Fatal("not updated")
	}
	if b, _ := os.ReadFile(filepath.Join(target, "a.txt")); string(b) != "two\n" {
		t.Fatalf("worktree %q", b)
	}
}

func TestRevisions(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	c1 := r.commit("f", "1")
	run(t, r.work, "tag", "v1")
	run(t, r.work, "push", "--quiet", "origin", "v1")
	run(t, r.work, "tag", "-a", "-m", "annotated", "v1a")
	run(t, r.work, "push", "--quiet", "origin", "v1a")
	c2 := r.commit("f", "2")
	run(t, r.work, "checkout", "--quiet", "-b", "feature")
	os.WriteFile(filepath.Join(r.work, "g"), []byte("feature"), 0o644)
	run(t, r.work, "add", "g")
	run(t, r.work, "commit", "--quiet", "-m", "feature")
	run(t, r.work, "push", "--quiet", "origin", "feature")
	cf := head(t, r.work)

	cases := []struct {
		rev, branch, want, wantBranch string
	}{
		{"", "", c2, "main"},
		{"main", "", c2, "main"},
		{"feature", "", cf, "feature"},
		{"v1", "", c1, ""},
		{"v1a", "", c1, ""}, // annotated: the peeled commit
		{c1, "", c1, ""},
		{c1[:10], "", c1, ""},
		{"v1", "deploy", c1, "deploy"},
	}
	for _, c := range cases {
		t.Run(c.rev+"/"+c.branch, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "co")
			s := Spec{URL: r.url, Target: target, Rev: c.rev, Branch: c.branch}
			if _, _, err := s.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			if h := head(t, target); h != c.want {
				t.Fatalf("head %s, want %s", h, c.want)
			}
			b, _ := exec.Command("git", "-C", target, "symbolic-ref", "--quiet", "--short", "HEAD").Output()
			if strings.TrimSpace(string(b)) != c.wantBranch {
				t.Fatalf("branch %q, want %q", b, c.wantBranch)
			}
			if ch, _, err := s.Check(ctx); err != nil || len(ch) != 0 {
				t.Fatalf("second check %v %v", ch, err)
			}
			// Switching an existing checkout to main works too.
			s2 := Spec{URL: r.url, Target: target, Rev: "main"}
			if _, _, err := s2.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			if head(t, target) != c2 {
				t.Fatal("switch to main failed")
			}
		})
	}
}

func TestLocalChangesNeedForceReset(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	r.commit("a", "1\n")
	target := filepath.Join(t.TempDir(), "co")
	if _, _, err := (Spec{URL: r.url, Target: target}).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(target, "a"), []byte("local edit\n"), 0o644)
	c2 := r.commit("a", "2\n")
	_, _, err := Spec{URL: r.url, Target: target}.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "force_reset") {
		t.Fatalf("err = %v", err)
	}
	ch, _, err := Spec{URL: r.url, Target: target, ForceReset: true}.Apply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch["forced update"] != true || head(t, target) != c2 {
		t.Fatalf("changes %v head %s", ch, head(t, target))
	}
	if b, _ := os.ReadFile(filepath.Join(target, "a")); string(b) != "2\n" {
		t.Fatalf("worktree %q", b)
	}
}

func TestShallowClone(t *testing.T) {
	r := newRepo(t)
	r.commit("a", "1")
	r.commit("a", "2")
	target := filepath.Join(t.TempDir(), "co")
	if _, _, err := (Spec{URL: r.url, Target: target, Depth: 1}).Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := run(t, target, "rev-parse", "--is-shallow-repository"); out != "true" {
		t.Fatalf("shallow = %s", out)
	}
	if n := run(t, target, "rev-list", "--count", "HEAD"); n != "1" {
		t.Fatalf("commits = %s", n)
	}
}

func TestTargetNotARepository(t *testing.T) {
	r := newRepo(t)
	r.commit("a", "1")
	target := t.TempDir()
	os.WriteFile(filepath.Join(target, "x"), nil, 0o644)
	_, _, err := Spec{URL: r.url, Target: target}.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not a git checkout") {
		t.Fatalf("err = %v", err)
	}
}

// Injection attempts are refused before git runs: the marker file an
// option or the ext:: transport would create never appears.
func TestRefusesOptionInjection(t *testing.T) {
	r := newRepo(t)
	r.commit("a", "1")
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	cases := []struct {
		name string
		s    Spec
		want string
	}{
		{"url option", Spec{URL: "--upload-pack=touch " + marker, Target: dir + "/t"}, "option"},
		{"url dash", Spec{URL: "-uevil", Target: dir + "/t"}, "starts with '-'"},
		{"ext transport", Spec{URL: "ext::sh -c touch% " + marker, Target: dir + "/t"}, "transport"},
		{"fd transport", Spec{URL: "fd::3", Target: dir + "/t"}, "transport"},
		{"upload-pack in url", Spec{URL: r.url + " --upload-pack=touch " + marker, Target: dir + "/t"}, "option"},
		{"rev option", Spec{URL: r.url, Target: dir + "/t", Rev: "--upload-pack=touch"}, "not a valid revision"},
		{"rev dash", Spec{URL: r.url, Target: dir + "/t", Rev: "-b"}, "not a valid revision"},
		{"rev space", Spec{URL: r.url, Target: dir + "/t", Rev: "main --orphan"}, "not a valid revision"},
		{"branch dash", Spec{URL: r.url, Target: dir + "/t", Branch: "-f"}, "not a valid revision"},
		{"remote", Spec{URL: r.url, Target: dir + "/t", Remote: "-x"}, "not a valid remote"},
		{"relative target", Spec{URL: r.url, Target: "co"}, "absolute"},
		{"newline", Spec{URL: r.url + "\n-x", Target: dir + "/t"}, "control"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := c.s.Apply(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("an injected command ran")
	}
}

// Defence in depth: even past validation, GIT_ALLOW_PROTOCOL stops ext::.
func TestAllowProtocolBlocksExt(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	s := Spec{}
	_, err := s.git(context.Background(), "", "ls-remote", "--", "ext::sh -c touch% "+marker)
	if err == nil {
		t.Fatal("ext:: transport was allowed")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("ext:: command ran")
	}
}

func FuzzParseLsRemote(f *testing.F) {
	f.Add("ref: refs/heads/main\tHEAD\n0123456789abcdef0123456789abcdef01234567\tHEAD\n0123456789abcdef0123456789abcdef01234567\trefs/heads/main\n")
	f.Add("garbage\n\t\nref: \t\n")
	f.Fuzz(func(t *testing.T, s string) {
		r := ParseLsRemote(s)
		for name, sha := range r.Refs {
			if !hexRe.MatchString(sha) || name == "" || !strings.Contains(s, sha+"\t"+name) {
				t.Fatalf("bad ref %q=%q from %q", name, sha, s)
			}
		}
	})
}

func TestParseLsRemote(t *testing.T) {
	out := "ref: refs/heads/trunk\tHEAD\n" +
		"1111111111111111111111111111111111111111\tHEAD\n" +
		"1111111111111111111111111111111111111111\trefs/heads/trunk\n" +
		"2222222222222222222222222222222222222222\trefs/tags/v1\n" +
		"3333333333333333333333333333333333333333\trefs/tags/v1^{}\n"
	r := ParseLsRemote(out)
	if r.HeadRef != "refs/heads/trunk" || r.Refs["refs/tags/v1^{}"] != strings.Repeat("3", 40) || len(r.Refs) != 4 {
		t.Fatalf("%+v", r)
	}
}

// A push of a commit the remote does not have fails the clone with a
// reason naming the revision, and leaves the target as it was found: a
// deploy must not leave a checkout of some other commit under the
// release name, and the next run must clone afresh.
func TestMissingRevisionLeavesTargetAsFound(t *testing.T) {
	r := newRepo(t)
	r.commit("index.php", "A")
	missing := strings.Repeat("de", 20)
	for _, tc := range []struct {
		name     string
		preexist bool
	}{
		{"target absent", false},
		{"target an empty directory", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "releases", missing)
			if tc.preexist {
				if err := os.MkdirAll(target, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := Spec{URL: r.url, Target: target, Rev: missing, ForceReset: true}.Apply(context.Background())
			if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "not available") {
				t.Fatalf("want an error naming the missing revision, got %v", err)
			}
			ents, statErr := os.ReadDir(target)
			switch {
			case tc.preexist && (statErr != nil || len(ents) != 0):
				t.Errorf("pre-existing empty target not left empty: %v %v", ents, statErr)
			case !tc.preexist && !os.IsNotExist(statErr):
				t.Errorf("target created by the failed clone still there: %v %v", ents, statErr)
			}
		})
	}
}
