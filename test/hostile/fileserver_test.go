package hostile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const outsideSecret = "TOPSECRET-outside-file_roots"

// CVE-2020-11652 / CVE-2021-25282: path traversal out of the file server.
// Every way of naming a file outside file_roots — in file.managed sources,
// in Jinja include/import/from, in SLS includes — is refused with an error,
// and the secret's content reaches neither the minion nor brinectl's
// output. One in-tree source works, so the refusals are not a broken setup.
func TestFileServerTraversalRefused(t *testing.T) {
	sources := []string{
		"salt://../secret.txt",
		"salt://../../etc/shadow",
		"salt://../../../../../../../../etc/shadow",
		"salt:///etc/shadow",
		"salt:////etc/shadow",
		"/etc/shadow",
		"file:///etc/shadow",
		"salt://%2e%2e/secret.txt",
		"salt://%2e%2e%2fsecret.txt",
		"salt://..%2fsecret.txt",
		"salt://a/../../secret.txt",
		"salt://./../secret.txt",
		"salt://..\\secret.txt",
		"salt://link-out",
		"salt://dirlink/secret.txt",
		"salt://ok.txt?saltenv=../..",
		"salt://ok.txt?saltenv=/",
		"salt://secret.txt\x00.txt",
		"https://example.invalid/secret.txt",
	}
	jinja := []string{
		"{% include '../secret.txt' %}",
		"{% include '../../etc/shadow' %}",
		"{% include '/etc/shadow' %}",
		"{% include 'salt://../secret.txt' %}",
		"{% include 'link-out' %}",
		"{% include 'dirlink/secret.txt' %}",
		"{% import '../secret.txt' as s %}",
		"{% import 'salt://../../etc/shadow' as s %}",
		"{% from '../secret.txt' import x %}",
		"{% from 'dirlink/secret.txt' import x %}",
	}
	slsIncludes := []string{"..secret", "../secret", "/etc/shadow", "dirlink.secret", "link-out", ".", "..", "a..b"}

	files := map[string]string{
		"secret.txt":        outsideSecret + "\n",
		"states/ok.txt":     "in-tree content\n",
		"states/good.sls":   "good:\n  file.managed:\n    - name: @DIR@/out/good\n    - source: salt://ok.txt\n",
		"states/secret.sls": "leak:\n  file.managed:\n    - name: @DIR@/out/included\n    - contents: " + outsideSecret + "\n",
	}
	var cases []string
	for i, src := range sources {
		name := fmt.Sprintf("src%d", i)
		files["states/"+name+".sls"] = fmt.Sprintf("%s:\n  file.managed:\n    - name: @DIR@/out/%s\n    - source: %q\n", name, name, src)
		cases = append(cases, name)
	}
	for i, j := range jinja {
		name := fmt.Sprintf("jinja%d", i)
		files["states/"+name+".sls"] = fmt.Sprintf("%s\n%s:\n  file.managed:\n    - name: @DIR@/out/%s\n    - contents: x\n", j, name, name)
		cases = append(cases, name)
	}
	for i, inc := range slsIncludes {
		name := fmt.Sprintf("include%d", i)
		files["states/"+name+".sls"] = fmt.Sprintf("include:\n  - %q\n%s:\n  file.managed:\n    - name: @DIR@/out/%s\n    - contents: x\n", inc, name, name)
		cases = append(cases, name)
	}
	f := startContentFleet(t, files, "", map[string][]string{"web1": nil})
	// A symlink to a file outside the tree, and one to a directory outside.
	if err := os.Symlink(f.path("secret.txt"), f.path("states/link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f.dir, f.path("states/dirlink")); err != nil {
		t.Fatal(err)
	}

	out, code := f.ctl.Run("state", "apply", "web1", "good")
	if b, _ := os.ReadFile(f.path("out/good")); code != 0 || string(b) != "in-tree content\n" {
		t.Fatalf("control case (an in-tree source) does not work: exit %d %q\n%s", code, b, out)
	}
	shadow, _ := os.ReadFile("/etc/shadow")
	shadowLine, _, _ := strings.Cut(string(shadow), "\n")
	passed := 0
	for _, name := range cases {
		out, code := f.ctl.Run("state", "apply", "web1", name)
		if code == 0 {
			t.Errorf("%s: applied (exit 0)\n%s", name, out)
			continue
		}
		if strings.Contains(out, outsideSecret) || (shadowLine != "" && strings.Contains(out, shadowLine)) {
			t.Errorf("%s: secret content in the output\n%s", name, out)
			continue
		}
		if _, err := os.Stat(f.path("out/" + name)); err == nil {
			t.Errorf("%s: the managed file was written", name)
			continue
		}
		if _, err := os.Stat(f.path("out/included")); err == nil {
			t.Fatalf("%s: an SLS outside the requested one was included", name)
		}
		passed++
	}
	t.Logf("file server traversal: %d/%d cases refused", passed, len(cases))
	if entries, _ := os.ReadDir(filepath.Join(f.dir, "out")); len(entries) != 1 {
		t.Errorf("out/ holds %d files, want only the control case's", len(entries))
	}
}

// CVE-2021-25282 (wheel/pillar of another minion): a minion gets its own
// pillar only. The attacker claims the victim's id as a grain, asks for
// pillar in templates, and — with a key of its own, speaking the protocol
// directly — asks the master for pillar functions and the victim's data
// by name. Nothing returns the victim's pillar.
func TestOtherMinionsPillarRefused(t *testing.T) {
	const victimSecret = "VICTIM-PILLAR-db-password"
	files := map[string]string{
		"pillar/top.sls":           "base:\n  victim:\n    - victim_secret\n  '*':\n    - common\n",
		"pillar/victim_secret.sls": "db_password: " + victimSecret + "\n",
		"pillar/common.sls":        "site: ams1\n",
		"states/dump.sls": "dump:\n  file.managed:\n    - name: @DIR@/out/{{ grains['id'] }}-dump\n    - contents: |\n" +
			"        pillar={{ pillar | tojson }}\n" +
			"        items={{ salt['pillar.items']() | tojson }}\n" +
			"        get={{ salt['pillar.get']('db_password', 'none') }}\n" +
			"        item={{ salt['pillar.item']('db_password') | tojson }}\n" +
			"        mine={{ salt['mine.get']('victim', 'pillar.items') | tojson }}\n",
	}
	f := startContentFleet(t, files, "", map[string][]string{
		"victim":   nil,
		"attacker": {"--grain", "id=victim", "--grain", "minion_id=victim"},
	})
	cases, passed := 0, 0
	check := func(what, got string) {
		t.Helper()
		cases++
		if strings.Contains(got, victimSecret) {
			t.Errorf("%s: the victim's pillar reached the attacker: %s", what, got)
			return
		}
		passed++
	}

	// Positive control: the victim does get its own pillar.
	if out, code := f.ctl.Run("state", "apply", "victim", "dump"); code != 0 {
		t.Fatalf("victim dump: %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(f.path("out/victim-dump")); !strings.Contains(string(b), victimSecret) {
		t.Fatalf("control case: the victim does not see its own pillar: %s", b)
	}

	out, code := f.ctl.Run("state", "apply", "attacker", "dump")
	if code != 0 {
		t.Fatalf("attacker dump: %d\n%s", code, out)
	}
	b, _ := os.ReadFile(f.path("out/attacker-dump"))
	if !strings.Contains(string(b), "ams1") {
		t.Fatalf("attacker's own pillar missing: %s", b)
	}
	check("pillar rendered for a minion claiming grains id=victim", string(b))
	out, _ = f.ctl.Run("pillar", "items", "attacker", "--out", "json")
	check("pillar items attacker", out)
	out, _ = f.ctl.Run("run", "attacker", "mine.get", "victim", "pillar.items", "--out", "json")
	check("mine.get victim pillar.items from the attacker", out)

	raw := dialRawMinion(t, fmt.Sprintf("127.0.0.1:%d", f.port), "rawattacker")
	for _, c := range []struct {
		fun    string
		args   []any
		kwargs map[string]any
	}{
		{"pillar.items", nil, map[string]any{"id": "victim"}},
		{"pillar.items", []any{"victim"}, nil},
		{"pillar.get", []any{"db_password"}, map[string]any{"minion_id": "victim"}},
		{"pillar.raw", nil, map[string]any{"tgt": "victim"}},
		{"pillar.show_pillar", []any{"victim"}, nil},
		{"pillar.ext", nil, map[string]any{"id": "victim"}},
		{"wheel.pillar_roots.read", []any{"victim_secret.sls"}, nil},
		{"wheel.file_roots.read", []any{"../pillar/victim_secret.sls"}, nil},
		{"cp.get_file_str", []any{"salt://../pillar/victim_secret.sls"}, nil},
		{"cp.get_file_str", []any{"salt://../secret.txt"}, nil},
		{"state.show_sls", []any{"dump"}, map[string]any{"id": "victim"}},
		{"mine.get", []any{"victim", "pillar.items"}, nil},
		{"mine.get", []any{"*", "*"}, nil},
		{"mine.get", []any{"victim", "pillar.items"}, map[string]any{"__requester__": "victim", "id": "victim"}},
	} {
		ret, errText := raw.call(t, c.fun, c.args, c.kwargs)
		check(fmt.Sprintf("master call %s %v %v (err %q)", c.fun, c.args, c.kwargs, errText), fmt.Sprint(ret, errText))
		if c.fun != "mine.get" && errText == "" {
			t.Errorf("master call %s answered %v, want refusal", c.fun, ret)
		}
	}
	t.Logf("other minion's pillar: %d/%d cases refused", passed, cases)
}
