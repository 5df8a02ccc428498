package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Salt keeps keys it does not know in __opts__; brine does the same for
// the master, refusing only near-misses of known keys.
func TestUnknownMasterKeysReachOpts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "master")
	text := "port: 4507\ngithub:\n  webhook-key: s3cret\nmy_team: [a, b]\n" +
		"webhook:\n  listen: 127.0.0.1:0\n  hooks:\n    'deploy/*': {allow_unauthenticated: true}\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadMaster(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Webhook.Hooks["deploy/*"].AllowUnauthenticated {
		t.Error("allow_unauthenticated not read")
	}
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	gh, _ := opts["github"].(map[string]any)
	if gh["webhook-key"] != "s3cret" || len(opts["my_team"].([]any)) != 2 {
		t.Errorf("unknown keys not in opts: %v", opts)
	}
	if opts["port"] != 4507 || opts["interface"] != "0.0.0.0" || opts["reactor_py_max_steps"] != 10000000 {
		t.Errorf("known keys not in opts: port=%v interface=%v steps=%v", opts["port"], opts["interface"], opts["reactor_py_max_steps"])
	}
}

func TestNearMissesAreStillErrors(t *testing.T) {
	for text, want := range map[string]string{
		"auto_acept: true\n":         `did you mean "auto_accept"`,
		"reactor_worker_thread: 3\n": `did you mean "reactor_worker_threads"`,
		"fileroots: {}\n":            `did you mean "file_roots"`,
		"webhook:\n  lisen: :8000\n": `"webhook.lisen": unknown key (did you mean "listen"?)`,
		"webhook:\n  custom: true\n": `"webhook.custom": unknown key`,
		"reactor_py_max_steps: -1\n": "non-negative integer",
	} {
		p := filepath.Join(t.TempDir(), "master")
		os.WriteFile(p, []byte(text), 0o600)
		if _, err := LoadMaster(p, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", text, err, want)
		}
	}
	// The minion file stays strict.
	p := filepath.Join(t.TempDir(), "minion")
	os.WriteFile(p, []byte("github: {x: 1}\n"), 0o600)
	if _, err := LoadMinion(p, true); err == nil {
		t.Error("unknown minion key accepted")
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		max  int
		want int
	}{{"port", "port", 3, 0}, {"prot", "port", 3, 2}, {"auto_acept", "auto_accept", 3, 1}, {"github", "port", 3, 3}, {"", "abc", 3, 3}} {
		if got := editDistance(c.a, c.b, c.max); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
