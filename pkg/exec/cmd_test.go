package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCmdFunctions(t *testing.T) {
	r := NewRegistry()
	t.Setenv("BRINE_TEST_LEAK", "from-minion")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ret     any
		retcode int
		dir     string
	}
	tests := []struct {
		name    string
		fun     string
		args    []any
		kwargs  map[string]any
		want    any // exact return, when set
		check   func(t *testing.T, res result)
		retcode int    // job retcode reported through the sink
		wantErr string // substring; implies ErrBadArgs when badArgs is set
		badArgs bool
	}{
		{name: "shell string", fun: "cmd.run", args: []any{"echo hello | tr a-z A-Z"}, want: "HELLO"},
		{name: "stderr interleaved", fun: "cmd.run", args: []any{"echo out; echo err >&2; echo out2"}, want: "out\nerr\nout2"},
		{name: "cwd", fun: "cmd.run", args: []any{"pwd"}, kwargs: map[string]any{"cwd": "$DIR"},
			check: func(t *testing.T, res result) {
				if res.ret != res.dir {
					t.Errorf("pwd = %v, want %s", res.ret, res.dir)
				}
			}},
		{name: "default cwd is home, as Salt", fun: "cmd.run", args: []any{"pwd -P"}, want: realpath(t, me.HomeDir)},
		{name: "env dict", fun: "cmd.run", args: []any{`printf '%s|%s' "$BRINE_A" "$BRINE_N"`},
			kwargs: map[string]any{"env": map[string]any{"BRINE_A": "a b;c", "BRINE_N": 3.0}}, want: "a b;c|3"},
		{name: "env keeps minion environment", fun: "cmd.run", args: []any{`printf %s "$BRINE_TEST_LEAK"`}, want: "from-minion"},
		{name: "env null unsets", fun: "cmd.run", args: []any{`printf %s "${BRINE_TEST_LEAK-unset}"`},
			kwargs: map[string]any{"env": map[string]any{"BRINE_TEST_LEAK": nil}}, want: "unset"},
		{name: "clean_env", fun: "cmd.run", args: []any{`printf '%s|%s' "${BRINE_TEST_LEAK-none}" "$PATH"`},
			kwargs: map[string]any{"clean_env": true}, want: "none|" + defaultPath},
		{name: "stdin", fun: "cmd.run", args: []any{"tr a-z A-Z"}, kwargs: map[string]any{"stdin": "abc\ndef\n"}, want: "ABC\nDEF"},
		{name: "no stdin is /dev/null", fun: "cmd.run", args: []any{"cat"}, want: ""},
		{name: "rstrip off", fun: "cmd.run", args: []any{`printf 'a\n\n'`}, kwargs: map[string]any{"rstrip": false}, want: "a\n\n"},
		{name: "invalid utf-8 replaced", fun: "cmd.run", args: []any{`printf 'a\377b'`}, want: "a\uFFFDb"},
		{name: "nonzero exit sets job retcode", fun: "cmd.run", args: []any{"echo partial; exit 3"}, want: "partial", retcode: 3},
		{name: "ignore_retcode", fun: "cmd.run", args: []any{"exit 3"}, kwargs: map[string]any{"ignore_retcode": true}, want: "", retcode: 0},
		{name: "run_all", fun: "cmd.run_all", args: []any{"echo out; echo err >&2; exit 5"}, retcode: 5,
			check: func(t *testing.T, res result) {
				m := res.ret.(map[string]any)
				if m["stdout"] != "out" || m["stderr"] != "err" || m["retcode"] != 5 {
					t.Errorf("run_all = %v", m)
				}
				if pid, _ := m["pid"].(int); pid <= 0 {
					t.Errorf("pid = %v", m["pid"])
				}
			}},
		{name: "run_stdout", fun: "cmd.run_stdout", args: []any{"echo out; echo err >&2"}, want: "out"},
		{name: "run_stderr", fun: "cmd.run_stderr", args: []any{"echo out; echo err >&2"}, want: "err"},
		{name: "retcode", fun: "cmd.retcode", args: []any{"exit 7"}, want: 7, retcode: 0},
		{name: "killed by signal is negative", fun: "cmd.retcode", args: []any{"kill -TERM $$"}, want: -int(syscall.SIGTERM)},
		{name: "argv list stays literal", fun: "cmd.run", kwargs: map[string]any{"cwd": "$DIR", "cmd": []any{"printf", "%s|", "$(touch pwned)", "`touch pwned2`; touch pwned3", "*", "a b"}},
			check: func(t *testing.T, res result) {
				want := "$(touch pwned)|`touch pwned2`; touch pwned3|*|a b|"
				if res.ret != want {
					t.Errorf("got %q, want %q", res.ret, want)
				}
				for _, f := range []string{"pwned", "pwned2", "pwned3"} {
					if _, err := os.Stat(filepath.Join(res.dir, f)); err == nil {
						t.Errorf("%s was created: a shell ran", f)
					}
				}
			}},
		{name: "argv exit code", fun: "cmd.run_all", args: []any{[]any{"sh", "-c", "exit 4"}}, retcode: 4,
			check: func(t *testing.T, res result) {
				if res.ret.(map[string]any)["retcode"] != 4 {
					t.Errorf("got %v", res.ret)
				}
			}},
		{name: "argv numbers become words", fun: "cmd.run", args: []any{[]any{"echo", 1.0, 2.5}}, want: "1 2.5"},
		{name: "python_shell false splits without a shell", fun: "cmd.run", args: []any{`printf '%s|' 'a b' c;d $HOME`},
			kwargs: map[string]any{"python_shell": false}, want: "a b|c;d|$HOME|"},
		{name: "python_shell null means shell", fun: "cmd.run", args: []any{"echo a | tr a b"}, kwargs: map[string]any{"python_shell": nil}, want: "b"},
		{name: "leading dash is not a shell option", fun: "cmd.run", args: []any{"-c"}, retcode: 127,
			check: func(t *testing.T, res result) {
				if !strings.Contains(res.ret.(string), "not found") {
					t.Errorf("got %q: '-c' was taken as an option", res.ret)
				}
			}},
		{name: "other shell", fun: "cmd.run", args: []any{"echo $0"}, kwargs: map[string]any{"shell": "/bin/bash"}, want: "/bin/bash"},
		{name: "command not found in argv", fun: "cmd.run", args: []any{[]any{"brine-no-such-command"}}, wantErr: "cmd.run: command 'brine-no-such-command' not found in PATH"},
		{name: "cwd missing", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"cwd": "/nonexistent/brine"}, badArgs: true,
			wantErr: "cmd.run: argument 'cwd': specified cwd '/nonexistent/brine' either not absolute or does not exist"},
		{name: "cwd relative", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"cwd": "tmp"}, badArgs: true, wantErr: "argument 'cwd'"},
		{name: "timeout negative", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"timeout": -1}, badArgs: true, wantErr: "argument 'timeout'"},
		{name: "timeout not a number", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"timeout": "soon"}, badArgs: true, wantErr: "argument 'timeout': expected float"},
		{name: "empty command", fun: "cmd.run", args: []any{"  "}, badArgs: true, wantErr: "argument 'cmd': empty command"},
		{name: "empty argv", fun: "cmd.run", args: []any{[]any{}}, badArgs: true, wantErr: "argument 'cmd': empty argv list"},
		{name: "argv with dict", fun: "cmd.run", args: []any{[]any{"echo", map[string]any{}}}, badArgs: true, wantErr: "argv[1]: expected a string, got dict"},
		{name: "NUL in command", fun: "cmd.run", args: []any{"echo a\x00b"}, badArgs: true, wantErr: "NUL"},
		{name: "env key with =", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"env": map[string]any{"A=B": "x"}}, badArgs: true, wantErr: `argument 'env': invalid variable name "A=B"`},
		{name: "env value list", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"env": map[string]any{"A": []any{}}}, badArgs: true, wantErr: "A: expected a string or number"},
		{name: "relative shell", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"shell": "bash"}, badArgs: true, wantErr: "argument 'shell': must be an absolute path"},
		{name: "unknown kwarg", fun: "cmd.run", args: []any{"true"}, kwargs: map[string]any{"cwdd": "/"}, badArgs: true, wantErr: "argument 'cwdd': unexpected keyword argument"},
		{name: "unbalanced quote with python_shell false", fun: "cmd.run", args: []any{`echo 'a`}, kwargs: map[string]any{"python_shell": false}, badArgs: true, wantErr: "no closing single quotation"},
		{name: "runas unknown user", fun: "cmd.run", args: []any{"id"}, kwargs: map[string]any{"runas": "brine-no-such-user"}, badArgs: true, wantErr: "argument 'runas'"},
		{name: "which", fun: "cmd.which", args: []any{"sh"}, check: func(t *testing.T, res result) {
			if p, _ := res.ret.(string); !filepath.IsAbs(p) || filepath.Base(p) != "sh" {
				t.Errorf("which sh = %v", res.ret)
			}
		}},
		{name: "which missing", fun: "cmd.which", args: []any{"brine-no-such-command"}, want: nil},
		{name: "has_exec", fun: "cmd.has_exec", args: []any{"/bin/sh"}, want: true},
		{name: "has_exec missing", fun: "cmd.has_exec", args: []any{"brine-no-such-command"}, want: false},
	}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests,
			struct {
				name    string
				fun     string
				args    []any
				kwargs  map[string]any
				want    any
				check   func(t *testing.T, res result)
				retcode int
				wantErr string
				badArgs bool
			}{name: "runas", fun: "cmd.run", args: []any{`id -u; printf %s "$USER"`}, kwargs: map[string]any{"runas": "nobody", "cwd": "/"},
				want: nobody.Uid + "\nnobody"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			kwargs := map[string]any{}
			for k, v := range tt.kwargs {
				if v == "$DIR" {
					v = dir
				}
				kwargs[k] = v
			}
			var sink RetcodeSink
			ret, err := r.Call(WithRetcodeSink(context.Background(), &sink), nil, tt.fun, tt.args, kwargs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if tt.badArgs && !errors.Is(err, ErrBadArgs) {
					t.Fatalf("err = %v is not ErrBadArgs", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, result{ret, sink.Retcode(), dir})
			} else if ret != tt.want {
				t.Errorf("got %#v, want %#v", ret, tt.want)
			}
			if sink.Retcode() != tt.retcode {
				t.Errorf("job retcode = %d, want %d", sink.Retcode(), tt.retcode)
			}
		})
	}
}

func realpath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// processGone reports whether pid no longer runs (gone or a zombie
// awaiting its reaper).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestCmdTimeoutKillsProcessGroup: the shell and the background child it
// started must both die when the timeout fires.
func TestCmdTimeoutKillsProcessGroup(t *testing.T) {
	r := NewRegistry()
	dir := t.TempDir()
	start := time.Now()
	var sink RetcodeSink
	ret, err := r.Call(WithRetcodeSink(context.Background(), &sink), nil, "cmd.run_all",
		[]any{"echo $$ > shell.pid; sleep 300 & echo $! > child.tmp; mv child.tmp child.pid; wait"},
		map[string]any{"cwd": dir, "timeout": 2})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Fatalf("timeout took %s", el)
	}
	m := ret.(map[string]any)
	want := "echo $$ > shell.pid; sleep 300 & echo $! > child.tmp; mv child.tmp child.pid; wait : Timed out after 2 seconds"
	if m["stdout"] != want || m["retcode"] != 1 || sink.Retcode() != 1 {
		t.Fatalf("got %v (job retcode %d)", m, sink.Retcode())
	}
	waitGone(t, readPid(t, filepath.Join(dir, "shell.pid")))
	waitGone(t, readPid(t, filepath.Join(dir, "child.pid")))
}

func TestCmdCancelKillsProcessGroup(t *testing.T) {
	r := NewRegistry()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the child exists, as a job timeout would.
		for i := 0; i < 500; i++ {
			if _, err := os.Stat(filepath.Join(dir, "child.pid")); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	_, err := r.Call(ctx, nil, "cmd.run", []any{"sleep 300 & echo $! > child.tmp; mv child.tmp child.pid; wait"}, map[string]any{"cwd": dir})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	waitGone(t, readPid(t, filepath.Join(dir, "child.pid")))
}

// A daemon started by the command keeps its output pipe open; the call
// must still return soon after the command itself exits.
func TestCmdBackgroundChildDoesNotHang(t *testing.T) {
	r := NewRegistry()
	dir := t.TempDir()
	start := time.Now()
	ret, err := r.Call(context.Background(), nil, "cmd.run", []any{"sleep 300 & echo $! > child.pid; echo started"}, map[string]any{"cwd": dir})
	if err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, filepath.Join(dir, "child.pid"))
	defer syscall.Kill(pid, syscall.SIGKILL)
	if ret != "started" {
		t.Fatalf("got %q", ret)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %s", el)
	}
}

func TestCapBuffer(t *testing.T) {
	var c capBuffer
	chunk := strings.Repeat("x", 1<<20)
	for i := 0; i < 17; i++ {
		c.Write([]byte(chunk))
	}
	s := c.String(false)
	if !strings.HasSuffix(s, fmt.Sprintf("[brine: %d more bytes of output dropped]", 1<<20)) || len(s) < maxOutput {
		t.Fatalf("tail = %q", s[len(s)-60:])
	}
}
