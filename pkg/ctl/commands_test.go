package ctl

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brine-cm/brine/proto/brinev1"
)

func TestPublishRequests(t *testing.T) {
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	tests := []struct {
		name    string
		args    []string
		target  string
		tgtType string
		fun     string
		wargs   []any
		wkwargs map[string]any
		timeout int64
	}{
		{"glob ping", []string{"run", "*", "test.ping"}, "*", "glob", "test.ping", []any{}, map[string]any{}, 10000},
		{"grain", []string{"run", "-G", "os:Debian", "cmd.run", "uptime -p"}, "os:Debian", "grain", "cmd.run", []any{"uptime -p"}, map[string]any{}, 10000},
		{"list with kwargs", []string{"run", "-L", "web1,web2", "pkg.install", "nginx", "refresh=true", "version=1.2"},
			"web1,web2", "list", "pkg.install", []any{"nginx"}, map[string]any{"refresh": true, "version": 1.2}, 10000},
		{"pcre", []string{"run", "-E", "web[0-9]+", "test.ping"}, "web[0-9]+", "pcre", "test.ping", []any{}, map[string]any{}, 10000},
		{"grain pcre", []string{"run", "--grain-pcre", "os:Deb.*", "test.ping"}, "os:Deb.*", "grain_pcre", "test.ping", []any{}, map[string]any{}, 10000},
		{"ipcidr", []string{"run", "-S", "10.0.0.0/24", "test.ping"}, "10.0.0.0/24", "ipcidr", "test.ping", []any{}, map[string]any{}, 10000},
		{"compound", []string{"run", "-C", "G@os:Debian and web*", "test.ping"}, "G@os:Debian and web*", "compound", "test.ping", []any{}, map[string]any{}, 10000},
		{"timeout", []string{"run", "-t", "3", "web1", "test.sleep", "1"}, "web1", "glob", "test.sleep", []any{1.0}, map[string]any{}, 3000},
		{"dash args after --", []string{"run", "web1", "test.arg", "--", "-1", "--literal"}, "web1", "glob", "test.arg", []any{-1.0, "--literal"}, map[string]any{}, 10000},
		{"yaml values", []string{"run", "web1", "test.arg", "[1, two]", "0644", "None", "opts={a: b}"}, "web1", "glob", "test.arg",
			[]any{[]any{1.0, "two"}, 644.0, nil}, map[string]any{"opts": map[string]any{"a": "b"}}, 10000},
		{"state apply highstate", []string{"state", "apply", "web1"}, "web1", "glob", "state.apply", []any{}, map[string]any{}, 10000},
		{"state apply sls and kwargs", []string{"state", "apply", "web*", "nginx,php", "test=True", `pillar={"port": 8080}`, "saltenv=dev"},
			"web*", "glob", "state.apply", []any{"nginx,php"}, map[string]any{"test": true, "pillar": map[string]any{"port": 8080.0}, "saltenv": "dev"}, 10000},
		{"state apply sls as words", []string{"state", "apply", "web1", "nginx", "php"}, "web1", "glob", "state.apply", []any{"nginx,php"}, map[string]any{}, 10000},
		{"state highstate grain", []string{"state", "highstate", "-G", "role:web", "test=true"}, "role:web", "grain", "state.highstate", []any{}, map[string]any{"test": true}, 10000},
		{"state sls", []string{"state", "sls", "-t", "60", "web1", "nginx"}, "web1", "glob", "state.sls", []any{"nginx"}, map[string]any{}, 60000},
		{"mine update", []string{"mine", "update", "-L", "a,b"}, "a,b", "list", "mine.update", []any{}, map[string]any{}, 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// --socket goes first: flags after "--" are arguments.
			r := cli(t, nil, append([]string{"--socket", sock}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			req := fm.lastPublish(t)
			if req.GetTarget() != tt.target || req.GetTgtType() != tt.tgtType || req.GetFun() != tt.fun || req.GetTimeoutMs() != tt.timeout {
				t.Errorf("request = %v %v %v %v", req.GetTarget(), req.GetTgtType(), req.GetFun(), req.GetTimeoutMs())
			}
			if got := req.GetArgs().AsSlice(); !reflect.DeepEqual(got, tt.wargs) {
				t.Errorf("args = %#v, want %#v", got, tt.wargs)
			}
			if got := req.GetKwargs().AsMap(); !reflect.DeepEqual(got, tt.wkwargs) {
				t.Errorf("kwargs = %#v, want %#v", got, tt.wkwargs)
			}
			if req.GetUser() != "tester" {
				t.Errorf("user = %q", req.GetUser())
			}
		})
	}
}

func TestRunOutputAndExitStatus(t *testing.T) {
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	failed := ret("web2", nil, false)
	failed.Error = "'foo.bar' is not available."
	cmdFail := ret("web5", map[string]any{"retcode": 1.0, "stderr": "boom", "stdout": ""}, false)
	invalid := func(*brinev1.PublishRequest, grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
		return status.Error(codes.InvalidArgument, `invalid compound target "G@os and (": unbalanced parenthesis`)
	}
	tests := []struct {
		name       string
		publish    func(*brinev1.PublishRequest, grpc.ServerStreamingServer[brinev1.PublishEvent]) error
		args       []string
		code       int
		golden     string
		wantStderr string
	}{
		{"all returned", script([]string{"web1", "web2"}, nil,
			[]*brinev1.Return{ret("web2", map[string]any{"os": "Debian", "roles": []any{"web"}}, true), ret("web1", true, true)}, nil),
			[]string{"run", "*", "grains.items"}, 0, "run_ok", ""},
		{"failed function", script([]string{"web1", "web2", "web5"}, nil,
			[]*brinev1.Return{ret("web1", true, true), failed, cmdFail}, nil),
			[]string{"run", "*", "foo.bar"}, 1, "run_failed", ""},
		{"missing and offline", script([]string{"web1", "web2", "web3", "web4"}, []string{"web3"},
			[]*brinev1.Return{ret("web1", "Linux web1 6.1.0", true)}, []string{"web2"}),
			[]string{"run", "*", "cmd.run", "uname -a"}, 1, "run_missing", ""},
		{"stream ends without JobDone", script([]string{"web1", "web2"}, nil,
			[]*brinev1.Return{ret("web1", true, true)}, nil, false),
			[]string{"run", "*", "test.ping"}, 1, "run_stream_ended", ""},
		{"json shape", script([]string{"web1", "web2", "web3", "web4"}, []string{"web3"},
			[]*brinev1.Return{ret("web1", map[string]any{"a": 1.0}, true), failed}, []string{"web4"}),
			[]string{"run", "--out", "json", "*", "test.ping"}, 1, "run_json", ""},
		{"yaml", script([]string{"web1"}, nil, []*brinev1.Return{ret("web1", []any{"a", 1.0}, true)}, nil),
			[]string{"run", "--out", "yaml", "*", "test.arg"}, 0, "run_yaml", ""},
		{"verbose", script([]string{"web1"}, nil, []*brinev1.Return{ret("web1", true, true)}, nil),
			[]string{"run", "-v", "*", "test.ping"}, 0, "run_verbose", "Executing job with jid 20260101120000000001"},
		{"invalid target", invalid, []string{"run", "-C", "G@os and (", "test.ping"}, 2, "",
			`Error: invalid compound target "G@os and (": unbalanced parenthesis`},
		{"no minion matched", script(nil, nil, nil, nil), []string{"run", "nomatch*", "test.ping"}, 2, "",
			"No minions matched the target"},
		{"master error", func(*brinev1.PublishRequest, grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
			return status.Error(codes.Internal, "job cache is full")
		}, []string{"run", "*", "test.ping"}, 1, "", "Error: publish test.ping: job cache is full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm.set(func(f *fakeMaster) { f.publish = tt.publish })
			r := cli(t, nil, append(tt.args, "--socket", sock)...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tt.code, r.stderr)
			}
			if tt.golden != "" {
				golden(t, tt.golden, r.stdout)
			}
			if tt.wantStderr != "" && !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.wantStderr)
			}
		})
	}
}

func TestRunJSONIsOneObject(t *testing.T) {
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	failed := ret("web2", nil, false)
	failed.Error = "'foo.bar' is not available."
	fm.publish = script([]string{"web1", "web2", "web3", "web4"}, []string{"web3"},
		[]*brinev1.Return{ret("web1", map[string]any{"a": 1.0}, true), failed}, []string{"web4"})
	r := cli(t, nil, "run", "*", "x.y", "--out", "json", "--socket", sock)
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	want := map[string]any{
		"web1": map[string]any{"a": 1.0},
		"web2": "'foo.bar' is not available.",
		"web3": "Minion did not return. [Not connected]",
		"web4": "Minion did not return. [No response]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func TestStateApplyOutput(t *testing.T) {
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	states := func(result any, changes map[string]any) map[string]any {
		return map[string]any{
			"pkg_|-nginx_|-nginx_|-installed": map[string]any{
				"__id__": "nginx", "name": "nginx", "function": "pkg.installed", "result": true,
				"changes": map[string]any{}, "comment": "All specified packages are already installed",
				"duration": 10.5, "start_time": "10:00:00.000000", "__run_num__": 0.0},
			"service_|-nginx_|-nginx_|-running": map[string]any{
				"__id__": "nginx", "name": "nginx", "function": "service.running", "result": result,
				"changes": changes, "comment": "Service nginx has been enabled, and is running",
				"duration": 200.25, "start_time": "10:00:00.010500", "__run_num__": 1.0},
		}
	}
	compileErr := []any{"Rendering SLS 'base:nginx' failed: line 3: mapping values are not allowed here"}
	tests := []struct {
		name   string
		rets   []*brinev1.Return
		args   []string
		code   int
		golden string
	}{
		{"success with changes", []*brinev1.Return{ret("web1", states(true, map[string]any{"nginx": true}), true)},
			[]string{"state", "apply", "web1", "nginx"}, 0, "state_ok"},
		// The minion said success, but a state failed: the outputter's
		// count decides, as in Salt.
		{"failed state", []*brinev1.Return{ret("web1", states(false, map[string]any{}), true)},
			[]string{"state", "apply", "web1"}, 1, "state_failed"},
		{"test mode terse", []*brinev1.Return{ret("web1", states(nil, map[string]any{"nginx": true}), true)},
			[]string{"state", "apply", "--state-output", "terse", "web1", "test=True"}, 0, "state_test_terse"},
		{"compile errors", []*brinev1.Return{ret("web1", compileErr, false)},
			[]string{"state", "sls", "web1", "nginx"}, 1, "state_compile_error"},
		{"compile errors even if minion claims success", []*brinev1.Return{ret("web1", compileErr, true)},
			[]string{"state", "sls", "web1", "nginx"}, 1, "state_compile_error"},
		{"forced colour", []*brinev1.Return{ret("web1", states(true, map[string]any{"nginx": true}), true)},
			[]string{"state", "apply", "--color", "web1"}, 0, "state_ok_color"},
		{"json", []*brinev1.Return{ret("web1", states(false, map[string]any{}), false)},
			[]string{"state", "apply", "--out", "json", "web1"}, 1, "state_json"},
		{"run state.apply uses highstate", []*brinev1.Return{ret("web1", states(true, map[string]any{"nginx": true}), true)},
			[]string{"run", "web1", "state.apply", "nginx"}, 0, "state_ok"},
		{"explicit nested", []*brinev1.Return{ret("web1", map[string]any{"a_|-b_|-c_|-d": map[string]any{"result": true}}, true)},
			[]string{"run", "--out", "nested", "web1", "state.apply"}, 0, "state_as_nested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm.set(func(f *fakeMaster) { f.publish = script([]string{"web1"}, nil, tt.rets, nil) })
			r := cli(t, nil, append(tt.args, "--socket", sock)...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tt.code, r.stderr)
			}
			golden(t, tt.golden, r.stdout)
		})
	}
}

func TestColourChoice(t *testing.T) {
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	tests := []struct {
		name     string
		terminal bool
		env      map[string]string
		flags    []string
		want     bool
	}{
		{"pipe", false, nil, nil, false},
		{"terminal", true, nil, nil, true},
		{"terminal NO_COLOR", true, map[string]string{"NO_COLOR": "1"}, nil, false},
		{"terminal --no-color", true, nil, []string{"--no-color"}, false},
		{"pipe --color", false, nil, []string{"--color"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "web1", "test.ping", "--socket", sock}, tt.flags...)
			r := cliCtx(t.Context(), tt.env, tt.terminal, args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := strings.Contains(r.stdout, "\x1b["); got != tt.want {
				t.Errorf("coloured = %v, want %v: %q", got, tt.want, r.stdout)
			}
		})
	}
}

func TestRunnerRequests(t *testing.T) {
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	tests := []struct {
		name    string
		args    []string
		fun     string
		wargs   []any
		wkwargs map[string]any
	}{
		{"show_sls", []string{"state", "show_sls", "web1", "nginx"}, "state.show_sls", []any{"web1", "nginx"}, map[string]any{"tgt_type": "glob"}},
		{"show_sls grain", []string{"state", "show_sls", "-G", "os:Debian", "nginx"}, "state.show_sls", []any{"os:Debian", "nginx"}, map[string]any{"tgt_type": "grain"}},
		{"show_top", []string{"state", "show_top", "web1"}, "state.show_top", []any{"web1"}, map[string]any{}},
		{"pillar items", []string{"pillar", "items", "web1"}, "pillar.items", []any{"web1"}, map[string]any{}},
		{"pillar items compound", []string{"pillar", "items", "-C", "G@os:Debian and web*"}, "pillar.items", []any{"G@os:Debian and web*"}, map[string]any{"tgt_type": "compound"}},
		{"key list", []string{"key", "list"}, "key.list", []any{}, map[string]any{}},
		{"key accept", []string{"key", "accept", "web3", "web4"}, "key.accept", []any{"web3", "web4"}, map[string]any{}},
		{"key accept all", []string{"key", "accept", "--all"}, "key.accept", []any{}, map[string]any{"all": true}},
		{"key reject", []string{"key", "reject", "web3"}, "key.reject", []any{"web3"}, map[string]any{}},
		{"key delete", []string{"key", "delete", "web3"}, "key.delete", []any{"web3"}, map[string]any{}},
		{"key finger all", []string{"key", "finger"}, "key.finger", []any{}, map[string]any{}},
		{"key finger one", []string{"key", "finger", "web1"}, "key.finger", []any{"web1"}, map[string]any{}},
		{"minions", []string{"minions"}, "minions.list", []any{}, map[string]any{}},
		{"job list", []string{"job", "list"}, "job.list", []any{}, map[string]any{}},
		// A JID stays a string: it must not be rounded through a float.
		{"job show", []string{"job", "show", "20260101120000000001"}, "job.show", []any{"20260101120000000001"}, map[string]any{}},
		{"event fire", []string{"event", "fire", "myco/deploy/done", `{"app": "shop", "n": 2}`}, "event.fire",
			[]any{"myco/deploy/done", map[string]any{"app": "shop", "n": 2.0}}, map[string]any{}},
		{"event fire no data", []string{"event", "fire", "ping"}, "event.fire", []any{"ping", map[string]any{}}, map[string]any{}},
		{"mine get", []string{"mine", "get", "web*", "network.ip_addrs"}, "mine.get", []any{"web*", "network.ip_addrs"}, map[string]any{"tgt_type": "glob"}},
		{"mine get grain", []string{"mine", "get", "-G", "role:db", "network.ip_addrs"}, "mine.get", []any{"role:db", "network.ip_addrs"}, map[string]any{"tgt_type": "grain"}},
		{"mine flush", []string{"mine", "flush", "-L", "a,b"}, "mine.flush", []any{"a,b"}, map[string]any{"tgt_type": "list"}},
		{"reactor list", []string{"reactor", "list"}, "reactor.list", []any{}, map[string]any{}},
		{"status", []string{"status"}, "status", []any{}, map[string]any{}},
	}
	fm.runner = func(req *brinev1.RunnerRequest) (any, error) {
		switch req.GetFun() {
		case "key.accept":
			ids := req.GetArgs().AsSlice()
			if len(ids) == 0 {
				ids = []any{"new1"}
			}
			return map[string]any{"accepted": ids}, nil
		case "key.reject":
			return map[string]any{"rejected": req.GetArgs().AsSlice()}, nil
		case "key.delete":
			return map[string]any{"deleted": req.GetArgs().AsSlice()}, nil
		}
		return true, nil
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, nil, append(tt.args, "--socket", sock)...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			req := fm.lastRunner(t)
			if req.GetFun() != tt.fun {
				t.Errorf("fun = %q, want %q", req.GetFun(), tt.fun)
			}
			if got := req.GetArgs().AsSlice(); !reflect.DeepEqual(got, tt.wargs) {
				t.Errorf("args = %#v, want %#v", got, tt.wargs)
			}
			if got := req.GetKwargs().AsMap(); !reflect.DeepEqual(got, tt.wkwargs) {
				t.Errorf("kwargs = %#v, want %#v", got, tt.wkwargs)
			}
		})
	}
}

func TestRunnerOutput(t *testing.T) {
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	replies := map[string]any{
		"key.list":   map[string]any{"accepted": []any{"web2", "web1"}, "pending": []any{"new1"}, "rejected": []any{}, "denied": []any{}},
		"key.finger": map[string]any{"accepted": map[string]any{"web1": "SHA256:q1w2"}},
		"key.accept": map[string]any{"accepted": []any{"web3"}},
		"minions.list": []any{
			map[string]any{"id": "web2", "connected": false, "last_seen": "2026-03-01T09:00:00Z",
				"grains": map[string]any{"os": "Ubuntu", "osrelease": "24.04", "roles": []any{"web", "lb"}, "env": "prod"}},
			map[string]any{"id": "db1", "connected": true, "last_seen": "2026-03-01T11:59:55Z",
				"grains": map[string]any{"os": "Debian", "osrelease": "12", "roles": "db", "env": "prod"}},
			map[string]any{"id": "new1", "connected": false, "grains": map[string]any{}},
		},
		"job.list": []any{
			map[string]any{"jid": "20260301115900000001", "fun": "state.apply", "target": "web*", "tgt_type": "glob",
				"user": "sudo_alice", "start_time": "2026-03-01T11:59:00Z", "minions": []any{"web1", "web2"}, "returned": []any{"web1"}},
			map[string]any{"jid": "20260301115000000002", "fun": "test.ping", "target": "os:Debian", "tgt_type": "grain",
				"user": "root", "start_time": "2026-03-01T11:50:00.5Z", "minions": 3.0, "returned": 3.0},
		},
		"job.show": map[string]any{
			"job":     map[string]any{"jid": "20260301115900000001", "fun": "test.ping", "target": "web*"},
			"returns": map[string]any{"web1": map[string]any{"return": true, "success": true, "retcode": 0.0}},
			"missing": []any{"web2"},
		},
		"reactor.list": []any{
			map[string]any{"tag": "salt/minion/*/start", "files": []any{"/srv/reactor/start.sls"}},
			map[string]any{"tag": "myco/deploy/*", "files": []any{"/srv/reactor/deploy.sls", "/srv/reactor/notify.sls"}},
		},
		"status":       map[string]any{"version": "0.1.0", "minions": map[string]any{"connected": 2.0, "accepted": 3.0}, "uptime_seconds": 3600.0},
		"pillar.items": map[string]any{"web1": map[string]any{"port": 8080.0, "users": []any{"alice"}}},
	}
	fm.runner = func(req *brinev1.RunnerRequest) (any, error) {
		if req.GetFun() == "job.show" && req.GetArgs().AsSlice()[0] == "404" {
			return nil, status.Error(codes.NotFound, "no job with jid 404")
		}
		return replies[req.GetFun()], nil
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		golden string
		stderr string
	}{
		{"key list", []string{"key", "list"}, 0, "key_list", ""},
		{"key list pending only", []string{"key", "list", "un"}, 0, "key_list_pending", ""},
		{"key list json", []string{"key", "list", "--out", "json"}, 0, "key_list_json", ""},
		{"key finger", []string{"key", "finger", "web1"}, 0, "key_finger", ""},
		{"key accept", []string{"key", "accept", "web3"}, 0, "key_accept", ""},
		{"key accept unknown", []string{"key", "accept", "web3", "ghost"}, 1, "key_accept", "No key for minion ghost could be accepted."},
		{"minions", []string{"minions"}, 0, "minions", ""},
		{"minions json", []string{"minions", "--out", "json"}, 0, "minions_json", ""},
		{"job list", []string{"job", "list"}, 0, "job_list", ""},
		{"job show", []string{"job", "show", "20260301115900000001"}, 0, "job_show", ""},
		{"job show unknown", []string{"job", "show", "404"}, 1, "", "Error: job.show: no job with jid 404"},
		{"reactor list", []string{"reactor", "list"}, 0, "reactor_list", ""},
		{"status", []string{"status"}, 0, "status", ""},
		{"status yaml", []string{"status", "--out", "yaml"}, 0, "status_yaml", ""},
		{"pillar items", []string{"pillar", "items", "web1"}, 0, "pillar_items", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, nil, append(tt.args, "--socket", sock)...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tt.code, r.stderr)
			}
			if tt.golden != "" {
				golden(t, tt.golden, r.stdout)
			}
			if tt.stderr != "" && !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.stderr)
			}
		})
	}
}

func TestConnectionErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")

	// A socket file nobody listens on any more (a crashed master).
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()

	notSocket := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	live := startMaster(t, &fakeMaster{})
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"missing socket", nil, []string{"run", "*", "test.ping", "--socket", missing}, 2, "no master is running at " + missing},
		{"stale socket", nil, []string{"key", "list", "--socket", stale}, 2, "no master is running at " + stale},
		{"not a socket", nil, []string{"status", "--socket", notSocket}, 2, "no master is running at " + notSocket},
		{"env socket", map[string]string{SocketEnv: missing}, []string{"events"}, 2, "no master is running at " + missing},
		{"env socket live", map[string]string{SocketEnv: live}, []string{"status"}, 0, ""},
		{"flag beats env", map[string]string{SocketEnv: live}, []string{"status", "--socket", missing}, 2, "no master is running at " + missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, tt.env, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tt.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.stderr)
			}
		})
	}
}

func TestDefaultSocket(t *testing.T) {
	a := &app{env: &Env{Getenv: func(string) string { return "" }}}
	if got := a.socketPath(); got != DefaultSocket {
		t.Errorf("socketPath() = %q, want %q", got, DefaultSocket)
	}
}

// Usage errors are refused before anything is sent: the socket given does
// not exist, so reaching the master would print "no master is running".
func TestUsageErrors(t *testing.T) {
	nowhere := filepath.Join(t.TempDir(), "nowhere.sock")
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no args", []string{"run"}, "requires at least 2 arg(s)"},
		{"unknown flag", []string{"run", "--bogus", "*", "test.ping"}, "unknown flag: --bogus"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"exclusive target flags", []string{"run", "-G", "-L", "a", "test.ping"}, "none of the others can be"},
		{"bad out", []string{"status", "--out", "xml"}, "--out must be one of"},
		{"bad state output", []string{"state", "apply", "web1", "--state-output", "loud"}, "--state-output must be one of"},
		{"zero timeout", []string{"run", "-t", "0", "*", "test.ping"}, "--timeout must be a positive"},
		{"sls needs a name", []string{"state", "sls", "web1"}, "requires at least 2 arg(s)"},
		{"highstate takes no sls", []string{"state", "highstate", "web1", "nginx"}, "state highstate takes no SLS names"},
		{"pillar not a map", []string{"state", "apply", "web1", "pillar=[1]"}, "pillar must be a mapping"},
		{"test not a bool", []string{"state", "apply", "web1", "test=maybe"}, "test must be True or False"},
		{"duplicate kwarg", []string{"run", "*", "test.arg", "a=1", "a=2"}, `keyword argument "a" given twice`},
		{"key accept nothing", []string{"key", "accept"}, "needs at least one minion ID"},
		{"key accept both", []string{"key", "accept", "--all", "web1"}, "not both"},
		{"key list bad state", []string{"key", "list", "sideways"}, `unknown key state "sideways"`},
		{"event data not object", []string{"event", "fire", "t", "[1]"}, "event data must be a JSON object"},
		{"docs without dir", []string{"docs"}, "--dir is required"},
		{"colour both ways", []string{"status", "--color", "--no-color"}, "none of the others can be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, nil, append(tt.args, "--socket", nowhere)...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.stderr)
			}
			if strings.Contains(r.stderr, "no master is running") {
				t.Errorf("usage error reached for the master: %q", r.stderr)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := cli(t, nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "brinectl") {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, r.code, len(r.stdout), r.stderr)
		}
	}
}
