package reactor

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/brine-cm/brine/pkg/webhook"
	"gopkg.in/yaml.v3"
)

func TestParseRules(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    []Rule
		wantErr string
	}{
		{name: "salt master config", yaml: `
- 'salt/netapi/hook/deploy/*':
  - /srv/reactor/code-deploy.sls
- 'mine/*/update':
  - /srv/reactor/mine-update.sls
  - salt://reactor/notify.sls
`, want: []Rule{
			{TagGlob: "salt/netapi/hook/deploy/*", Files: []string{"/srv/reactor/code-deploy.sls"}},
			{TagGlob: "mine/*/update", Files: []string{"/srv/reactor/mine-update.sls", "salt://reactor/notify.sls"}},
		}},
		{name: "single file as string", yaml: `[{'salt/minion/*/start': /srv/reactor/start.sls}]`,
			want: []Rule{{TagGlob: "salt/minion/*/start", Files: []string{"/srv/reactor/start.sls"}}}},
		{name: "two tags in one entry, sorted", yaml: `[{b: [/b.sls], a: [/a.sls]}]`,
			want: []Rule{{TagGlob: "a", Files: []string{"/a.sls"}}, {TagGlob: "b", Files: []string{"/b.sls"}}}},
		{name: "empty", yaml: ``, want: nil},
		{name: "mapping instead of list", yaml: `{a: [/a.sls]}`, wantErr: "want a list"},
		{name: "entry not a mapping", yaml: `[/a.sls]`, wantErr: "entry 1: want {tag glob: [files]}"},
		{name: "empty entry", yaml: `[{}]`, wantErr: "entry 1 is empty"},
		{name: "relative file", yaml: `[{a: [reactor/a.sls]}]`, wantErr: "absolute paths or salt://"},
		{name: "salt url escaping", yaml: `[{a: ['salt://../etc/shadow']}]`, wantErr: "bad salt:// path"},
		{name: "no files", yaml: `[{a: []}]`, wantErr: `tag "a": no reactor files`},
		{name: "file not a string", yaml: `[{a: [{x: 1}]}]`, wantErr: "file 1: want a path"},
		{name: "bad glob", yaml: `[{'a/[': [/a.sls]}]`, wantErr: `tag glob "a/["`},
		{name: "files is a number", yaml: `[{a: 3}]`, wantErr: "got a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := yaml.Unmarshal([]byte(tc.yaml), &v); err != nil {
				t.Fatal(err)
			}
			got, err := ParseRules(v)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// FuzzParseRules feeds arbitrary `reactor:` values through ParseRules:
// no panic, and every rule returned is well-formed.
func FuzzParseRules(f *testing.F) {
	f.Add("- 'salt/netapi/hook/deploy/*':\n  - /srv/reactor/code-deploy.sls\n")
	f.Add("[{a: /x}, {b: [salt://r/x.sls, /y]}]")
	f.Add("[{'[': [/x]}]")
	f.Add("- a: [1, 2]\n- 3\n")
	f.Fuzz(func(t *testing.T, text string) {
		var v any
		if yaml.Unmarshal([]byte(text), &v) != nil {
			return
		}
		rules, err := ParseRules(v)
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.TagGlob == "" || len(r.Files) == 0 {
				t.Fatalf("malformed rule %#v", r)
			}
			for _, f := range r.Files {
				if checkFile(f) != nil {
					t.Fatalf("bad file %q accepted", f)
				}
			}
		}
	})
}

// FuzzReactions feeds arbitrary rendered YAML to the reaction parser: no
// panic, and every local reaction has a target and a known target type.
func FuzzReactions(f *testing.F) {
	f.Add("deploy:\n  local.state.apply:\n    - tgt: 'roles:web'\n    - tgt_type: grain\n    - args:\n      - mods: web.deploy\n      - pillar: {deploy: {rev: abc}}\n")
	f.Add("x:\n  runner.event.send:\n    - arg: [a/b, {k: v}]\n")
	f.Add("x:\n  local.cmd.run:\n    - tgt: [a, 1, true]\n    - kwarg: {1: 2}\n")
	f.Add("x: &a [*a]\n")
	f.Add("- 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		rs, err := parseReactions("fuzz.sls", []byte(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.sls") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range rs {
			switch r.Client {
			case "local":
				if r.Tgt == "" || !tgtTypes[r.TgtType] || r.Kwargs == nil {
					t.Fatalf("bad local reaction %+v", r)
				}
			case "runner":
				if r.EventTag == "" || r.EventData == nil {
					t.Fatalf("bad runner reaction %+v", r)
				}
			default:
				t.Fatalf("client %q accepted", r.Client)
			}
		}
	})
}

// FuzzTojsonData checks the property the shipped code-deploy.sls relies
// on: any string value from the hook, passed through |tojson, comes out of
// Jinja+YAML as exactly that one string, never as YAML structure.
func FuzzTojsonData(f *testing.F) {
	f.Add("x\n  - tgt: '*'\n")
	f.Add("\"' ]} \n- tgt: '*'")
	f.Add("{{ 7*7 }}{% raw %}")
	f.Add("a\u2028b\u0085c\r\nd\x00\x1b")
	f.Add("!!binary &a *a # c")
	dir := f.TempDir()
	r, err := New(Config{SpoolDir: dir, Secrets: map[string]string{"github": writeFile(f, dir, "gh", ghSecret)}}, nil, &fakeLocal{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	file := repoFile(f, "states/reactor/code-deploy.sls")
	f.Fuzz(func(t *testing.T, after string) {
		if !utf8.ValidString(after) || after == "" {
			return // JSON bodies are UTF-8; an empty after means no deploy
		}
		body, _ := json.Marshal(map[string]any{"after": after, "repository": map[string]any{"clone_url": after}})
		post, err := webhook.DecodeJSON(body)
		if err != nil {
			t.Fatal(err)
		}
		data := map[string]any{"body": string(body), "post": post,
			"headers": map[string]any{"X-Hub-Signature-256": sign(ghSecret, body)}}
		rs, err := r.render(file, "salt/netapi/hook/deploy/web", data)
		if err != nil && strings.ContainsRune(after, 0x7f) && strings.Contains(err.Error(), "control characters") {
			// JSON leaves DEL unescaped and YAML refuses it: the reaction
			// fails, which is safe (reported as reactor/failed).
			return
		}
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		if len(rs) != 1 || rs[0].Tgt != "roles:web" || len(rs[0].Args) != 0 || len(rs[0].Kwargs) != 2 {
			t.Fatalf("reactions changed by data: %+v", rs)
		}
		dep := rs[0].Kwargs["pillar"].(map[string]any)["deploy"].(map[string]any)
		if dep["rev"] != after || dep["repo"] != after || len(dep) != 2 {
			t.Fatalf("deploy pillar %q, want rev and repo exactly %q", dep, after)
		}
	})
}

func TestJoinSurrogates(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"\ud83d\ude80"`, `"\U0001F680"`},
		{`"a\uD83D\uDE80b\ud83d\ude00"`, `"a\U0001F680b\U0001F600"`},
		{`"\\ud83d\ude80"`, `"\\ud83d\ude80"`}, // escaped backslash: literal text
		{`"\\\ud83d\ude80"`, `"\\\U0001F680"`},
		{`"\ud83d"`, `"\ud83d"`},                   // lone: left for YAML to refuse
		{`"\ude80\ud83d"`, `"\ude80\ud83d"`},       // wrong order
		{`"\u00e9\u20ac"`, `"\u00e9\u20ac"`},       // BMP escapes untouched
		{`plain \ud83d\ude8`, `plain \ud83d\ude8`}, // truncated
	}
	for _, tc := range tests {
		if got := joinSurrogates(tc.in); got != tc.want {
			t.Errorf("joinSurrogates(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
