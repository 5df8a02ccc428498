package pkgstate

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

func installedVersion(t *testing.T, name string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", name).Output()
	if err != nil {
		t.Fatalf("dpkg-query %s: %v", name, err)
	}
	return string(out)
}

// Against the real dpkg database of this machine.
func TestCheck(t *testing.T) {
	bash := installedVersion(t, "bash")
	cases := []struct {
		name    string
		wants   []Want
		changes map[string]string // name -> "old>new"
		errHas  string
	}{
		{"installed", []Want{{Name: "bash"}, {Name: "coreutils"}}, nil, ""},
		{"installed exact version", []Want{{Name: "bash", Version: bash}}, nil, ""},
		{"arch qualified", []Want{{Name: "bash:amd64"}}, nil, ""},
		{"missing", []Want{{Name: "bash"}, {Name: "brine-no-such-package"}}, map[string]string{"brine-no-such-package": ">latest"}, ""},
		{"other version", []Want{{Name: "bash", Version: "0.1-brine"}}, map[string]string{"bash": bash + ">0.1-brine"}, ""},
		{"option as name", []Want{{Name: "-oAPT::x=1"}}, nil, "not a valid package name"},
		{"upper case", []Want{{Name: "Bash"}}, nil, "not a valid package name"},
		{"option as version", []Want{{Name: "bash", Version: "-1"}}, nil, "not a valid version"},
		{"space in version", []Want{{Name: "bash", Version: "1 -y"}}, nil, "not a valid version"},
		{"none", nil, nil, "no packages"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "arch qualified" {
				if arch, _ := exec.Command("dpkg", "--print-architecture").Output(); strings.TrimSpace(string(arch)) != "amd64" {
					c.wants[0].Name = "bash:" + strings.TrimSpace(string(arch))
				}
			}
			ch, comment, err := Tools{}.Check(context.Background(), c.wants)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ch) != len(c.changes) {
				t.Fatalf("changes %v (%s), want %v", ch, comment, c.changes)
			}
			for n, on := range c.changes {
				m, _ := ch[n].(map[string]any)
				if got := m["old"].(string) + ">" + m["new"].(string); got != on {
					t.Fatalf("%s: %s, want %s", n, got, on)
				}
			}
			if len(ch) == 0 && !strings.HasPrefix(comment, "All specified packages are already installed") {
				t.Fatalf("comment %q", comment)
			}
			if len(ch) > 0 && !strings.HasPrefix(comment, "The following packages would be installed/updated") {
				t.Fatalf("comment %q", comment)
			}
		})
	}
}

// Install with everything already present returns before apt-get: it is
// given a binary that does not exist to prove it is never run.
func TestInstallNothingToDo(t *testing.T) {
	tools := Tools{AptGet: "/nonexistent/apt-get"}
	ch, comment, err := tools.Install(context.Background(), []Want{{Name: "bash"}}, true)
	if err != nil || len(ch) != 0 || !strings.Contains(comment, "already installed") {
		t.Fatalf("%v %q %v", ch, comment, err)
	}
	// And a missing package does reach apt-get (whose absence is the error).
	_, _, err = tools.Install(context.Background(), []Want{{Name: "brine-no-such-package"}}, false)
	if err == nil || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseDpkgQuery(f *testing.F) {
	f.Add("bash\t5.2.15-2+b8\tii \nlibc6\t2.36-9\tii \nold\t1.0\trc \n")
	f.Add("\t\t\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		for name, v := range ParseDpkgQuery(s) {
			if name == "" || !strings.Contains(s, name+"\t"+v+"\tii") {
				t.Fatalf("%q=%q not from an installed line of %q", name, v, s)
			}
		}
	})
}

func TestParseDpkgQuery(t *testing.T) {
	got := ParseDpkgQuery("bash\t5.2\tii \ngone\t1.0\trc \nhalf\t2\tiU \n")
	if len(got) != 1 || got["bash"] != "5.2" {
		t.Fatalf("%v", got)
	}
}
