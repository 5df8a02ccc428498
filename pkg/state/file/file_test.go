package file

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func ptr[T any](v T) *T { return &v }

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("golden %s: %v (run with -update)", p, err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestUnifiedDiffGolden(t *testing.T) {
	cases := []struct{ name, a, b string }{
		{"diff_change_middle.golden", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\n"},
		{"diff_two_hunks.golden", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n", "one\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\nfifteen\n"},
		{"diff_no_newline.golden", "x\ny", "x\ny\n"},
		{"diff_from_empty.golden", "", "new\nlines\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { golden(t, c.name, UnifiedDiff(c.a, c.b)) })
	}
}

// FuzzDiff checks that the ops of a diff rebuild both inputs.
func FuzzDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd\n")
	f.Add("", "x")
	f.Add("same\n", "same\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		ops := diffLines(splitLines(a), splitLines(b))
		if ops == nil {
			return
		}
		var ra, rb strings.Builder
		for _, o := range ops {
			if o.kind != '+' {
				ra.WriteString(o.text)
			}
			if o.kind != '-' {
				rb.WriteString(o.text)
			}
		}
		if ra.String() != a || rb.String() != b {
			t.Fatalf("ops do not rebuild inputs: %q %q", ra.String(), rb.String())
		}
		UnifiedDiff(a, b)
	})
}

func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"0644", "644", "2755", "0o755", "", "9", "17777", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMode(s)
		if err != nil {
			return
		}
		back, err := ParseMode(FormatMode(m))
		if err != nil || back != m {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, m, FormatMode(m), back, err)
		}
	})
}

func TestParseMode(t *testing.T) {
	cases := []struct {
		in   any
		want string
		err  bool
	}{
		{"0644", "0644", false},
		{"644", "0644", false},
		{644, "0644", false},
		{float64(600), "0600", false},
		{"2755", "2755", false},
		{"1777", "1777", false},
		{493, "", true}, // 0755 already read as decimal by a YAML 1.1 parser
		{"rwx", "", true},
		{true, "", true},
		{"77777", "", true},
	}
	for _, c := range cases {
		m, err := ParseMode(c.in)
		if (err != nil) != c.err {
			t.Errorf("ParseMode(%v) err = %v", c.in, err)
			continue
		}
		if err == nil && FormatMode(m) != c.want {
			t.Errorf("ParseMode(%v) = %s, want %s", c.in, FormatMode(m), c.want)
		}
	}
}

func modeOf(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return FormatMode(fi.Mode())
}

func TestManaged(t *testing.T) {
	type tc struct {
		name     string
		setup    func(t *testing.T, dir string)
		spec     func(dir string) Managed
		wantKeys []string
		wantErr  string
		wantFile string
		wantMode string
	}
	cases := []tc{
		{
			name: "new file with mode",
			spec: func(d string) Managed {
				return Managed{Path: d + "/a.conf", Contents: ptr("hello\n"), Mode: ptr(fs.FileMode(0o600)), Replace: true}
			},
			wantKeys: []string{"diff", "mode"}, wantFile: "hello\n", wantMode: "0600",
		},
		{
			name:     "content differs",
			setup:    func(t *testing.T, d string) { os.WriteFile(d+"/a.conf", []byte("old\n"), 0o640) },
			spec:     func(d string) Managed { return Managed{Path: d + "/a.conf", Contents: ptr("new\n"), Replace: true} },
			wantKeys: []string{"diff"}, wantFile: "new\n", wantMode: "0640",
		},
		{
			name:  "already correct",
			setup: func(t *testing.T, d string) { os.WriteFile(d+"/a.conf", []byte("same\n"), 0o644) },
			spec: func(d string) Managed {
				return Managed{Path: d + "/a.conf", Contents: ptr("same\n"), Mode: ptr(fs.FileMode(0o644)), Replace: true}
			},
			wantFile: "same\n", wantMode: "0644",
		},
		{
			name:  "mode only",
			setup: func(t *testing.T, d string) { os.WriteFile(d+"/a.conf", []byte("same\n"), 0o644) },
			spec: func(d string) Managed {
				return Managed{Path: d + "/a.conf", Contents: ptr("same\n"), Mode: ptr(fs.FileMode(0o600)), Replace: true}
			},
			wantKeys: []string{"mode"}, wantFile: "same\n", wantMode: "0600",
		},
		{
			name:  "replace false keeps contents",
			setup: func(t *testing.T, d string) { os.WriteFile(d+"/a.conf", []byte("local edit\n"), 0o644) },
			spec: func(d string) Managed {
				return Managed{Path: d + "/a.conf", Contents: ptr("template\n"), Replace: false}
			},
			wantFile: "local edit\n", wantMode: "0644",
		},
		{
			name:    "missing parent without makedirs",
			spec:    func(d string) Managed { return Managed{Path: d + "/x/y/a.conf", Contents: ptr("a"), Replace: true} },
			wantErr: "makedirs",
		},
		{
			name: "makedirs",
			spec: func(d string) Managed {
				return Managed{Path: d + "/x/y/a.conf", Contents: ptr("a"), Replace: true, Makedirs: true}
			},
			wantKeys: []string{"diff"}, wantFile: "a", wantMode: "0644",
		},
		{
			name:    "directory in the way",
			setup:   func(t *testing.T, d string) { os.Mkdir(d+"/a.conf", 0o755) },
			spec:    func(d string) Managed { return Managed{Path: d + "/a.conf", Contents: ptr("a"), Replace: true} },
			wantErr: "is a directory",
		},
		{
			name:    "relative path",
			spec:    func(d string) Managed { return Managed{Path: "a.conf", Contents: ptr("a"), Replace: true} },
			wantErr: "not an absolute path",
		},
		{
			name:    "unknown user",
			spec:    func(d string) Managed { return Managed{Path: d + "/a", User: "no-such-user-brine"} },
			wantErr: "no-such-user-brine",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.setup != nil {
				c.setup(t, dir)
			}
			m := c.spec(dir)
			chk, err := m.Check()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Check err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(chk.Changes); strings.Join(got, ",") != strings.Join(c.wantKeys, ",") {
				t.Fatalf("Check changes %v, want keys %v", chk.Changes, c.wantKeys)
			}
			res, err := m.Apply()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(keys(res.Changes), ",") != strings.Join(c.wantKeys, ",") {
				t.Fatalf("Apply changes %v, want keys %v", res.Changes, c.wantKeys)
			}
			got, err := os.ReadFile(m.Path)
			if err != nil || string(got) != c.wantFile {
				t.Fatalf("file = %q, %v; want %q", got, err, c.wantFile)
			}
			if mode := modeOf(t, m.Path); mode != c.wantMode {
				t.Fatalf("mode = %s, want %s", mode, c.wantMode)
			}
			again, err := m.Check()
			if err != nil || len(again.Changes) != 0 {
				t.Fatalf("not idempotent: %v %v", again.Changes, err)
			}
			// No temp files left behind.
			ents, _ := os.ReadDir(filepath.Dir(m.Path))
			for _, e := range ents {
				if strings.Contains(e.Name(), ".brine-") {
					t.Fatalf("temp file left: %s", e.Name())
				}
			}
		})
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestManagedDiffAndOwner(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/motd"
	os.WriteFile(p, []byte("line1\nline2\n"), 0o644)
	os.Chown(p, 0, 0)
	m := Managed{Path: p, Contents: ptr("line1\nLINE2\n"), User: "nobody", Group: "nogroup", Replace: true}
	chk, err := m.Check()
	if err != nil {
		t.Fatal(err)
	}
	if chk.Changes["diff"] != "--- \n+++ \n@@ -1,2 +1,2 @@\n line1\n-line2\n+LINE2\n" {
		t.Fatalf("diff = %q", chk.Changes["diff"])
	}
	if chk.Changes["user"] != "nobody" || chk.Changes["group"] != "nogroup" {
		t.Fatalf("changes = %v", chk.Changes)
	}
	if _, err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	st := fi.Sys().(*syscall.Stat_t)
	uid, _ := LookupUID("nobody")
	gid, _ := LookupGID("nogroup")
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Fatalf("owner = %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

// A symlink at the managed path is followed: the link stays a link.
func TestManagedFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/real", []byte("a\n"), 0o644)
	os.Symlink("real", dir+"/link")
	if _, err := (Managed{Path: dir + "/link", Contents: ptr("b\n"), Replace: true}).Apply(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(dir + "/link"); fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatal("link replaced by a file")
	}
	if b, _ := os.ReadFile(dir + "/real"); string(b) != "b\n" {
		t.Fatalf("real = %q", b)
	}
}

func TestDirectory(t *testing.T) {
	dir := t.TempDir()
	d := Directory{Path: dir + "/a/b", Mode: ptr(fs.FileMode(0o750)), Makedirs: true}
	chk, err := d.Check()
	if err != nil || chk.Changes[d.Path] != "New Dir" || chk.Changes["mode"] != "0750" {
		t.Fatalf("check = %v %v", chk, err)
	}
	if _, err := os.Stat(d.Path); err == nil {
		t.Fatal("Check created the directory")
	}
	if _, err := d.Apply(); err != nil {
		t.Fatal(err)
	}
	if m := modeOf(t, d.Path); m != "0750" {
		t.Fatalf("mode %s", m)
	}
	if c, _ := d.Check(); len(c.Changes) != 0 {
		t.Fatalf("not idempotent: %v", c.Changes)
	}
	if _, err := (Directory{Path: dir + "/x/y"}).Check(); err == nil {
		t.Fatal("want error without makedirs")
	}
	os.WriteFile(dir+"/f", nil, 0o644)
	if _, err := (Directory{Path: dir + "/f"}).Check(); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestSymlink(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(d string)
		force   bool
		want    string // key expected in changes
		wantErr string
	}{
		{name: "new", want: "new"},
		{name: "repoint", setup: func(d string) { os.Symlink("/elsewhere", d+"/l") }, want: "change"},
		{name: "correct", setup: func(d string) { os.Symlink("/etc/target", d+"/l") }},
		{name: "file without force", setup: func(d string) { os.WriteFile(d+"/l", nil, 0o644) }, wantErr: "force"},
		{name: "file with force", setup: func(d string) { os.WriteFile(d+"/l", nil, 0o644) }, force: true, want: "forced"},
		{name: "dir with force", setup: func(d string) { os.MkdirAll(d+"/l/sub", 0o755) }, force: true, want: "forced"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.setup != nil {
				c.setup(dir)
			}
			s := Symlink{Path: dir + "/l", Target: "/etc/target", Force: c.force}
			res, err := s.Apply()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := res.Changes[c.want]; c.want != "" && !ok {
				t.Fatalf("changes %v lack %q", res.Changes, c.want)
			}
			if c.want == "" && len(res.Changes) != 0 {
				t.Fatalf("changes %v, want none", res.Changes)
			}
			if got, err := os.Readlink(s.Path); err != nil || got != "/etc/target" {
				t.Fatalf("readlink = %q %v", got, err)
			}
			if again, _ := s.Check(); len(again.Changes) != 0 {
				t.Fatalf("not idempotent %v", again.Changes)
			}
		})
	}
}

// Repointing a link renames over it: a reader racing the change always
// resolves the link to one of the two targets.
func TestSymlinkRepointNeverDangles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/v1", []byte("1"), 0o644)
	os.WriteFile(dir+"/v2", []byte("2"), 0o644)
	os.Symlink(dir+"/v1", dir+"/cur")
	done := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := os.ReadFile(dir + "/cur"); err != nil {
				select {
				case failed <- err:
				default:
				}
				return
			}
		}
	}()
	for i := 0; i < 200; i++ {
		tgt := dir + "/v1"
		if i%2 == 0 {
			tgt = dir + "/v2"
		}
		if _, err := (Symlink{Path: dir + "/cur", Target: tgt}).Apply(); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	select {
	case err := <-failed:
		t.Fatalf("reader saw a missing link: %v", err)
	default:
	}
}

func TestAbsent(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(dir+"/tree/sub", 0o755)
	os.WriteFile(dir+"/tree/sub/f", []byte("x"), 0o644)
	os.WriteFile(dir+"/keep", []byte("x"), 0o644)
	os.Symlink(dir+"/keep", dir+"/link")
	for _, p := range []string{dir + "/tree", dir + "/link"} {
		a := Absent{Path: p}
		c, err := a.Check()
		if err != nil || c.Changes["removed"] != p {
			t.Fatalf("check %s = %v %v", p, c, err)
		}
		if _, err := a.Apply(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s still there", p)
		}
	}
	if _, err := os.Stat(dir + "/keep"); err != nil {
		t.Fatal("symlink target removed")
	}
	if c, _ := (Absent{Path: dir + "/tree"}).Check(); len(c.Changes) != 0 {
		t.Fatal("absent path reported changes")
	}
	if _, err := (Absent{Path: "/"}).Check(); err == nil {
		t.Fatal("want refusal for /")
	}
}

func TestReplaceAtomicKeepsModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/hosts"
	os.WriteFile(p, []byte("a"), 0o640)
	os.Chown(p, 65534, 65534)
	if err := ReplaceAtomic(p, []byte("b")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	st := fi.Sys().(*syscall.Stat_t)
	if modeBits(fi.Mode()) != 0o640 || st.Uid != 65534 || st.Gid != 65534 {
		t.Fatalf("mode %v owner %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
}
