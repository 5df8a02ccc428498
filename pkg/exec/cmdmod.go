package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxOutput bounds what one stream of a command may keep in the minion's
// memory; a runaway command must not take the minion down.
const maxOutput = 16 << 20

// defaultPath is the PATH a clean_env command gets.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var cmdArgDocs = []ArgDoc{
	{Name: "cmd", Type: StrOrList, Required: true, Doc: "a string runs through the shell (`shell -c -- cmd`); a list is the argv of a program run directly, never through a shell"},
	{Name: "cwd", Type: Str, Doc: "directory to run in; default: the home directory of runas, or of the minion's user (as Salt)"},
	{Name: "stdin", Type: Str, Doc: "text fed to the command's standard input (default: /dev/null)"},
	{Name: "runas", Type: Str, Doc: "user to run as (the minion must be root); HOME, USER and LOGNAME are set for that user"},
	{Name: "shell", Type: Str, Default: "/bin/sh", Doc: "absolute path of the shell for string commands"},
	{Name: "python_shell", Type: Bool, Doc: "false splits a string command into words (shlex rules) and runs it without a shell"},
	{Name: "env", Type: Dict, Doc: "variables to set (null unsets one), on top of the minion's environment"},
	{Name: "clean_env", Type: Bool, Default: false, Doc: "start from an empty environment (PATH=" + defaultPath + ") instead of the minion's"},
	{Name: "rstrip", Type: Bool, Default: true, Doc: "strip trailing whitespace from the output"},
	{Name: "timeout", Type: Float, Doc: "seconds before the whole process group is killed"},
	{Name: "ignore_retcode", Type: Bool, Default: false, Doc: "do not log a non-zero exit or report it as the job's retcode"},
}

func registerCmd(r *Registry) {
	r.RegisterBound("cmd.run", Doc{
		Summary: "Run a command and return its output, stderr interleaved with stdout as Salt's cmd.run does. A non-zero exit becomes the job's retcode.",
		Args:    cmdArgDocs,
		Returns: "string",
		Example: "brinectl '*' cmd.run 'ls -l /etc' cwd=/tmp",
	}, cmdOutput("cmd.run", true, outCombined))
	r.RegisterBound("cmd.shell", Doc{
		Summary: "Same as cmd.run; kept because Salt has it for commands that need shell features.",
		Args:    cmdArgDocs,
		Returns: "string",
	}, cmdOutput("cmd.shell", true, outCombined))
	r.RegisterBound("cmd.run_stdout", Doc{
		Summary: "Run a command and return only its stdout.",
		Args:    cmdArgDocs,
		Returns: "string",
	}, cmdOutput("cmd.run_stdout", true, outStdout))
	r.RegisterBound("cmd.run_stderr", Doc{
		Summary: "Run a command and return only its stderr.",
		Args:    cmdArgDocs,
		Returns: "string",
	}, cmdOutput("cmd.run_stderr", true, outStderr))
	r.RegisterBound("cmd.run_all", Doc{
		Summary: "Run a command and return stdout, stderr, retcode and pid separately. A non-zero exit becomes the job's retcode.",
		Args:    cmdArgDocs,
		Returns: "{stdout: str, stderr: str, retcode: int, pid: int}",
		Example: "brinectl '*' cmd.run_all '[\"systemctl\", \"is-active\", \"nginx\"]'",
	}, func(ctx context.Context, env *Env, a *Args) (any, error) {
		res, req, err := runCmdArgs(ctx, env, "cmd.run_all", a)
		if err != nil {
			return nil, err
		}
		reportRetcode(ctx, env, req, res, a.Bool("ignore_retcode"))
		return map[string]any{"stdout": res.stdout, "stderr": res.stderr, "retcode": res.retcode, "pid": res.pid}, nil
	})
	r.RegisterBound("cmd.retcode", Doc{
		Summary: "Run a command and return its exit code. The job itself still succeeds.",
		Args:    cmdArgDocs,
		Returns: "int",
	}, func(ctx context.Context, env *Env, a *Args) (any, error) {
		res, _, err := runCmdArgs(ctx, env, "cmd.retcode", a)
		if err != nil {
			return nil, err
		}
		return res.retcode, nil
	})
	r.RegisterBound("cmd.which", Doc{
		Summary: "Return the full path of an executable found in the minion's PATH, or None.",
		Args:    []ArgDoc{{Name: "cmd", Type: Str, Required: true, Doc: "program name"}},
		Returns: "string or None",
	}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		p, err := lookPath(a.Str("cmd"), os.Getenv("PATH"))
		if err != nil {
			return nil, nil
		}
		return p, nil
	})
	r.RegisterBound("cmd.has_exec", Doc{
		Summary: "Return whether an executable is found in the minion's PATH (or exists, for an absolute path).",
		Args:    []ArgDoc{{Name: "cmd", Type: Str, Required: true, Doc: "program name or path"}},
		Returns: "bool",
	}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		_, err := lookPath(a.Str("cmd"), os.Getenv("PATH"))
		return err == nil, nil
	})
}

type outputKind int

const (
	outCombined outputKind = iota
	outStdout
	outStderr
)

func cmdOutput(fun string, setRetcode bool, kind outputKind) BoundFunc {
	return func(ctx context.Context, env *Env, a *Args) (any, error) {
		res, req, err := runCmdArgsKind(ctx, env, fun, a, kind == outCombined)
		if err != nil {
			return nil, err
		}
		if setRetcode {
			reportRetcode(ctx, env, req, res, a.Bool("ignore_retcode"))
		}
		if kind == outStderr {
			return res.stderr, nil
		}
		return res.stdout, nil
	}
}

func reportRetcode(ctx context.Context, env *Env, req *cmdRequest, res cmdResult, ignore bool) {
	if res.retcode == 0 || ignore {
		return
	}
	env.logger().Error("command failed", "fun", req.fun, "cmd", req.display, "retcode", res.retcode)
	SetRetcode(ctx, res.retcode)
}

type cmdRequest struct {
	fun      string
	argv     []string
	display  string // the command as the user wrote it, for logs and messages
	dir      string
	env      []string
	stdin    *string
	timeout  time.Duration
	cred     *syscall.Credential
	combined bool
	rstrip   bool
}

type cmdResult struct {
	stdout, stderr string
	retcode, pid   int
	timedOut       bool
}

func runCmdArgs(ctx context.Context, env *Env, fun string, a *Args) (cmdResult, *cmdRequest, error) {
	return runCmdArgsKind(ctx, env, fun, a, false)
}

func runCmdArgsKind(ctx context.Context, env *Env, fun string, a *Args, combined bool) (cmdResult, *cmdRequest, error) {
	req, err := newCmdRequest(fun, a)
	if err != nil {
		return cmdResult{}, nil, err
	}
	req.combined = combined
	env.logger().Info("executing command", "fun", fun, "cmd", req.display, "cwd", req.dir)
	res, err := runCommand(ctx, req)
	return res, req, err
}

func newCmdRequest(fun string, a *Args) (*cmdRequest, error) {
	req := &cmdRequest{fun: fun, rstrip: a.Bool("rstrip")}
	switch c := a.Value("cmd").(type) {
	case string:
		if strings.TrimSpace(c) == "" {
			return nil, badArg(fun, "cmd", "empty command")
		}
		if strings.ContainsRune(c, 0) {
			return nil, badArg(fun, "cmd", "contains a NUL byte")
		}
		req.display = c
		if a.Value("python_shell") == false {
			words, err := splitShellWords(c)
			if err != nil {
				return nil, badArg(fun, "cmd", "python_shell=False: %v", err)
			}
			if len(words) == 0 {
				return nil, badArg(fun, "cmd", "empty command")
			}
			req.argv = words
		} else {
			sh := a.Str("shell")
			if !filepath.IsAbs(sh) {
				return nil, badArg(fun, "shell", "must be an absolute path, got %q", sh)
			}
			if fi, err := os.Stat(sh); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
				return nil, badArg(fun, "shell", "%s is not an executable file", sh)
			}
			// "--" so a command starting with '-' is never read as shell options.
			req.argv = []string{sh, "-c", "--", c}
		}
	case []any:
		if len(c) == 0 {
			return nil, badArg(fun, "cmd", "empty argv list")
		}
		for i, w := range c {
			var s string
			switch x := w.(type) {
			case string:
				s = x
			default:
				if n, ok := asFloat(x); ok {
					s = strconv.FormatFloat(n, 'f', -1, 64)
				} else {
					return nil, badArg(fun, "cmd", "argv[%d]: expected a string, got %s", i, describe(w))
				}
			}
			if strings.ContainsRune(s, 0) {
				return nil, badArg(fun, "cmd", "argv[%d] contains a NUL byte", i)
			}
			req.argv = append(req.argv, s)
		}
		if req.argv[0] == "" {
			return nil, badArg(fun, "cmd", "argv[0] is empty")
		}
		quoted := make([]string, len(req.argv))
		for i, w := range req.argv {
			quoted[i] = quoteShellWord(w)
		}
		req.display = strings.Join(quoted, " ")
	}

	home := ""
	if runas := a.Str("runas"); runas != "" {
		u, err := user.Lookup(runas)
		if err != nil {
			return nil, badArg(fun, "runas", "%v", err)
		}
		home = u.HomeDir
		if cur, err := user.Current(); err != nil || cur.Uid != u.Uid {
			if os.Geteuid() != 0 {
				return nil, badArg(fun, "runas", "running as %s needs the minion to run as root", runas)
			}
			cred, err := credential(u)
			if err != nil {
				return nil, badArg(fun, "runas", "%v", err)
			}
			req.cred = cred
		}
		req.env = append(req.env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	} else if cur, err := user.Current(); err == nil {
		home = cur.HomeDir
	}

	req.dir = a.Str("cwd")
	if req.dir == "" {
		req.dir = home
	}
	if fi, err := os.Stat(req.dir); !filepath.IsAbs(req.dir) || err != nil || !fi.IsDir() {
		// Salt's wording.
		return nil, badArg(fun, "cwd", "specified cwd '%s' either not absolute or does not exist", req.dir)
	}

	var base []string
	if a.Bool("clean_env") {
		base = []string{"PATH=" + defaultPath}
	} else {
		base = os.Environ()
	}
	vars := envMap(append(base, req.env...))
	for k, v := range a.Dict("env") {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, badArg(fun, "env", "invalid variable name %q", k)
		}
		if v == nil {
			delete(vars, k)
			continue
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case bool:
			s = map[bool]string{true: "True", false: "False"}[x] // Python's str()
		default:
			n, ok := asFloat(x)
			if !ok {
				return nil, badArg(fun, "env", "%s: expected a string or number, got %s", k, describe(v))
			}
			s = strconv.FormatFloat(n, 'f', -1, 64)
		}
		if strings.ContainsRune(s, 0) {
			return nil, badArg(fun, "env", "%s: value contains a NUL byte", k)
		}
		vars[k] = s
	}
	req.env = req.env[:0]
	for k, v := range vars {
		req.env = append(req.env, k+"="+v)
	}

	if a.IsSet("stdin") && a.Value("stdin") != nil {
		s := a.Str("stdin")
		req.stdin = &s
	}
	if secs, ok := a.Float("timeout"); ok {
		if secs < 0 {
			return nil, badArg(fun, "timeout", "must not be negative, got %v", secs)
		}
		req.timeout = time.Duration(secs * float64(time.Second))
	}

	if !strings.Contains(req.argv[0], "/") {
		p, err := lookPath(req.argv[0], vars["PATH"])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fun, err)
		}
		req.argv[0] = p
	}
	return req, nil
}

func credential(u *user.User) (*syscall.Credential, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid %q of %s: %w", u.Uid, u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid %q of %s: %w", u.Gid, u.Username, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return cred, nil
}

func envMap(kv []string) map[string]string {
	m := make(map[string]string, len(kv))
	for _, e := range kv {
		if k, v, ok := strings.Cut(e, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// lookPath searches pathList (not the minion's own PATH, which may differ
// from the command's env) for an executable file. Relative PATH entries
// are skipped so a command never resolves against the current directory.
func lookPath(file, pathList string) (string, error) {
	if strings.Contains(file, "/") {
		if isExecutable(file) {
			return file, nil
		}
		return "", fmt.Errorf("command '%s' is not an executable file", file)
	}
	for _, dir := range filepath.SplitList(pathList) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, file)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("command '%s' not found in PATH", file)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// capBuffer keeps the first maxOutput bytes and counts the rest.
type capBuffer struct {
	buf     bytes.Buffer
	dropped int64
}

func (c *capBuffer) Write(p []byte) (int, error) {
	room := maxOutput - c.buf.Len()
	if room >= len(p) {
		return c.buf.Write(p)
	}
	if room > 0 {
		c.buf.Write(p[:room])
	}
	c.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (c *capBuffer) String(rstrip bool) string {
	s := strings.ToValidUTF8(c.buf.String(), "\uFFFD")
	if c.dropped > 0 {
		s += fmt.Sprintf("\n[brine: %d more bytes of output dropped]", c.dropped)
	}
	if rstrip {
		s = strings.TrimRight(s, " \t\r\n\v\f")
	}
	return s
}

// runCommand starts argv in its own process group, so a timeout or a
// cancelled job kills everything the command spawned, not just its
// first process.
func runCommand(ctx context.Context, req *cmdRequest) (cmdResult, error) {
	runCtx := ctx
	if req.timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, req.timeout)
		defer cancel()
	}
	c := osexec.CommandContext(runCtx, req.argv[0], req.argv[1:]...)
	c.Dir = req.dir
	c.Env = req.env
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: req.cred}
	c.Cancel = func() error {
		return syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	// A background child that keeps our pipes open must not hang the job.
	c.WaitDelay = 2 * time.Second
	if req.stdin != nil {
		c.Stdin = strings.NewReader(*req.stdin)
	}
	stdout, stderr := &capBuffer{}, &capBuffer{}
	c.Stdout = stdout
	if req.combined {
		c.Stderr = stdout
	} else {
		c.Stderr = stderr
	}

	err := c.Run()
	var res cmdResult
	if c.Process == nil {
		return res, fmt.Errorf("%s: unable to run command '%s': %w", req.fun, req.display, err)
	}
	res.pid = c.Process.Pid
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: command '%s' stopped: %w", req.fun, req.display, ctx.Err())
	}
	if runCtx.Err() != nil {
		// Salt's shape for a timeout: the message as stdout, retcode 1.
		res.timedOut = true
		res.retcode = 1
		res.stdout = fmt.Sprintf("%s : Timed out after %s seconds", req.display, strconv.FormatFloat(req.timeout.Seconds(), 'f', -1, 64))
		return res, nil
	}
	var exitErr *osexec.ExitError
	switch {
	case err == nil, errors.Is(err, osexec.ErrWaitDelay):
	case errors.As(err, &exitErr):
	default:
		return res, fmt.Errorf("%s: command '%s': %w", req.fun, req.display, err)
	}
	ws, _ := c.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		// Python's subprocess reports death by signal N as -N; so does Salt.
		res.retcode = -int(ws.Signal())
	} else {
		res.retcode = c.ProcessState.ExitCode()
	}
	res.stdout = stdout.String(req.rstrip)
	res.stderr = stderr.String(req.rstrip)
	return res, nil
}
