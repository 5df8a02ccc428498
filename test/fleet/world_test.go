package fleet

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/test/fleet/netns"
)

// narrate turns on readable step-by-step output on stdout (make
// demo-fleet): what each step did, the hosts files, the deployed page.
var narrate = os.Getenv("BRINE_FLEET_NARRATE") == "1"

// spec is one host of the story.
type spec struct {
	id    string
	roles []string
	env   string
	web   bool // gets nginx and the uwsgi stand-in
}

var story = []spec{
	{id: "web1", roles: []string{"php-web-host"}, env: "prod", web: true},
	{id: "web2", roles: []string{"php-web-host"}, env: "prod", web: true},
	{id: "db1", roles: []string{"mongodb_server", "mongo_primary"}, env: "prod"},
	{id: "db2", roles: []string{"mongodb_server"}, env: "prod"},
	{id: "db3", roles: []string{"mongodb_server"}, env: "prod"},
	{id: "stage1", roles: []string{}, env: "staging"},
}

// originalHosts is what each namespace's /etc/hosts holds before brine
// touches it; the comment line and the localhost line must survive.
func originalHosts(id string) string {
	return fmt.Sprintf("# %s: provisioned by the fleet harness, keep this line\n127.0.0.1\tlocalhost\n", id)
}

// world is everything the story runs on.
type world struct {
	t       *testing.T
	repo    string // the brine checkout (for states/)
	bin     string
	dir     string
	fleet   *netns.Fleet
	hosts   map[string]*netns.Host
	specs   map[string]spec
	minions map[string]*netns.Proc
	master  *netns.Proc
	ctl     ctl

	port, hookPort int
	masterCfg      string
	secret         []byte
	gitBare        string
	gitWork        string
	deployed       string // the commit step 4 left deployed
	self           string // this test binary, for helpers inside namespaces
}

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  error
)

// binaries builds the three programs once, or takes them from
// BRINE_BIN_DIR (make demo-fleet passes bin/ after make build; a
// relative path is taken from the top of the checkout).
func binaries(t *testing.T, repo string) string {
	t.Helper()
	if d := os.Getenv("BRINE_BIN_DIR"); d != "" {
		if !filepath.IsAbs(d) {
			d = filepath.Join(repo, d) // relative to the checkout, as make sees it
		}
		for _, b := range []string{"brine-master", "brine-minion", "brinectl"} {
			if _, err := os.Stat(filepath.Join(d, b)); err != nil {
				t.Fatalf("BRINE_BIN_DIR=%s: %v (run make build)", d, err)
			}
		}
		return d
	}
	buildOnce.Do(func() {
		builtDir, buildErr = os.MkdirTemp("", "brine-fleet-bin")
		if buildErr != nil {
			return
		}
		for name, pkg := range map[string]string{"brine-master": "./cmd/master", "brine-minion": "./cmd/minion", "brinectl": "./cmd/ctl"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(builtDir, name), pkg)
			cmd.Dir = repo
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtDir // removed by TestMain

}

// skipOrFail fails loudly when namespaces cannot be made here, unless
// the operator said BRINE_SKIP_NETNS=1.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, netns.ErrUnavailable) {
		if os.Getenv("BRINE_SKIP_NETNS") == "1" {
			t.Skipf("BRINE_SKIP_NETNS=1: %v", err)
		}
		t.Fatalf("the fleet story needs network namespaces: %v\n(run as root with iproute2 and CAP_NET_ADMIN, or set BRINE_SKIP_NETNS=1 to skip)", err)
	}
	t.Fatal(err)
}

func needNetns(t *testing.T) {
	t.Helper()
	if err := netns.Available(); err != nil {
		skipOrFail(t, err)
	}
	for _, bin := range []string{"/usr/sbin/nginx", "/usr/bin/uwsgi", "/usr/lib/uwsgi/plugins/php_plugin.so", "/etc/init.d/nginx", "/etc/init.d/uwsgi", "git", "ping", "getent", "update-rc.d"} {
		if _, err := os.Stat(bin); strings.HasPrefix(bin, "/") && err != nil {
			t.Fatalf("the fleet story needs %s (Debian: apt-get install nginx uwsgi uwsgi-plugin-php php-cli git iputils-ping init-system-helpers): %v", bin, err)
		}
		if _, err := exec.LookPath(bin); !strings.HasPrefix(bin, "/") && err != nil {
			t.Fatalf("the fleet story needs %s (Debian: apt-get install nginx uwsgi uwsgi-plugin-php php-cli git iputils-ping init-system-helpers): %v", bin, err)
		}
	}
}

func (w *world) say(format string, args ...any) {
	w.t.Helper()
	if narrate {
		fmt.Printf("\n\033[1m== "+format+"\033[0m\n", args...)
		return
	}
	w.t.Logf(format, args...)
}

// show prints a block (a file, a command's output) in narrated mode.
func (w *world) show(title, body string) {
	if narrate {
		fmt.Printf("--- %s\n%s", title, body)
		if !strings.HasSuffix(body, "\n") {
			fmt.Println()
		}
	}
}

func newWorld(t *testing.T) *world {
	needNetns(t)
	netns.HandleSignals()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, repo: repo, dir: t.TempDir(), self: self,
		hosts: map[string]*netns.Host{}, specs: map[string]spec{}, minions: map[string]*netns.Proc{}}
	w.bin = binaries(t, repo)
	// nginx and uWSGI workers run as www-data and must reach the deploy
	// dirs under the temp dir, which Go creates 0700.
	for _, d := range []string{filepath.Dir(w.dir), w.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	netns.OnSignal(func() {
		os.RemoveAll(w.dir)
		if builtDir != "" {
			os.RemoveAll(builtDir)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logf := t.Logf
	if narrate {
		logf = func(f string, a ...any) { fmt.Printf("   "+f+"\n", a...) }
	}
	w.fleet, err = netns.New(ctx, netns.Options{Logf: logf, Dir: w.path("hosts")})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			w.dumpLogs()
		}
		if err := w.fleet.Close(); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	// t.Cleanup does not run when go test's -timeout panics: tear down
	// just before that happens. Sweep covers a SIGKILL of the test.
	if d, ok := t.Deadline(); ok {
		timer := time.AfterFunc(time.Until(d)-15*time.Second, func() {
			fmt.Fprintln(os.Stderr, "fleet: test deadline near, tearing the fleet down")
			netns.CloseAll()
		})
		t.Cleanup(func() { timer.Stop() })
	}
	for _, s := range story {
		h, err := w.fleet.AddHost(ctx, s.id, originalHosts(s.id))
		if err != nil {
			skipOrFail(t, err)
		}
		w.hosts[s.id], w.specs[s.id] = h, s
	}
	w.port = freePort(t, netns.Gateway.String())
	w.hookPort = freePort(t, netns.Gateway.String())
	w.setupGit()
	w.writeMasterConfig()
	w.startMaster()
	for _, s := range story {
		if s.web {
			w.prepareWebHost(s.id)
		}
		w.startMinion(s)
	}
	return w
}

func freePort(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (w *world) path(parts ...string) string {
	return filepath.Join(append([]string{w.dir}, parts...)...)
}

func mustWrite(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// writeMasterConfig: the shipped states/ tree and reactor files, with one
// fleet-specific overlay earlier in the pillar roots (earlier roots win,
// as in Salt): a deploy pillar pointing at the local git repository and a
// per-host deploy root (all hosts share one filesystem).
func (w *world) writeMasterConfig() {
	t := w.t
	w.secret = make([]byte, 20)
	rand.Read(w.secret)
	secretFile := w.path("master", "github.secret")
	mustWrite(t, secretFile, hex.EncodeToString(w.secret)+"\n", 0o600)
	w.secret = []byte(hex.EncodeToString(w.secret))

	mustWrite(t, w.path("pillar", "deploy.sls"), fmt.Sprintf(`# Fleet overlay of states/pillar/deploy.sls.
deploy:
  repo: %s
  root: %s/{{ grains['id'] }}/app
`, jsonStr("file://"+w.gitBare), w.path("hosts")), 0o644)

	states := filepath.Join(w.repo, "states")
	cfg := map[string]any{
		"interface":    netns.Gateway.String(),
		"port":         w.port,
		"data_dir":     w.path("master"),
		"file_roots":   map[string]any{"base": []string{states}},
		"pillar_roots": map[string]any{"base": []string{w.path("pillar"), filepath.Join(states, "pillar")}},
		"mine_functions": map[string]any{
			"network.ip_addrs":     []string{"eth0"},
			"network.get_hostname": []string{},
		},
		"reactor": []any{
			map[string]any{"salt/netapi/hook/deploy/*": []string{filepath.Join(states, "reactor", "code-deploy.sls")}},
			map[string]any{"mine/*/update": []string{filepath.Join(states, "reactor", "mine-update.sls")}},
		},
		"reactor_secrets": map[string]string{"github": secretFile},
		"webhook": map[string]any{
			"listen": net.JoinHostPort(netns.Gateway.String(), fmt.Sprint(w.hookPort)),
			"hooks":  map[string]any{"deploy/*": map[string]any{"github_secret_file": secretFile}},
		},
		"log_level": "debug",
	}
	b, _ := json.MarshalIndent(cfg, "", "  ") // JSON is YAML
	w.masterCfg = w.path("master.yaml")
	mustWrite(t, w.masterCfg, string(b)+"\n", 0o600)
	w.ctl = ctl{w: w, bin: filepath.Join(w.bin, "brinectl"), socket: w.path("master", "control.sock")}
	w.show("master config "+w.masterCfg, string(b))
}

func jsonStr(s string) string { b, _ := json.Marshal(s); return string(b) }

func (w *world) startMaster() {
	t := w.t
	os.Remove(w.ctl.socket)
	p, err := w.fleet.Start("brine-master", w.path("master.log"), nil, filepath.Join(w.bin, "brine-master"), "--config", w.masterCfg)
	if err != nil {
		t.Fatal(err)
	}
	w.master = p
	eventually(t, "master control socket", 20*time.Second, func() bool {
		if !p.Running() {
			t.Fatalf("brine-master exited: %v\n%s", p.Err(), readFile(w.path("master.log")))
		}
		_, err := os.Stat(w.ctl.socket)
		return err == nil
	})
}

func (w *world) startMinion(s spec) {
	t := w.t
	h := w.hosts[s.id]
	grains := map[string]any{"roles": s.roles, "env": s.env}
	cfg := map[string]any{
		"id":               s.id,
		"master":           net.JoinHostPort(netns.Gateway.String(), fmt.Sprint(w.port)),
		"data_dir":         w.path("hosts", s.id, "minion"),
		"hosts_file":       h.HostsFile(),
		"grains":           grains,
		"mine_change_poll": 1,
		"recon_default":    200,
		"recon_max":        2000,
		"log_level":        "debug",
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	path := w.path("hosts", s.id, "minion.yaml")
	mustWrite(t, path, string(b)+"\n", 0o600)
	argv := []string{filepath.Join(w.bin, "brine-minion"), "--config", path}
	var p *netns.Proc
	var err error
	if s.web {
		// The mounts are arguments of a fixed script, never pasted into it.
		script := `hostname "$0" && n=$1 && shift && while [ "$n" -gt 0 ]; do mount --bind -- "$1" "$2" || exit 1; shift 2; n=$((n-1)); done && exec "$@"`
		mounts := w.webMounts(s.id)
		pre := []string{"unshare", "--uts", "--", "sh", "-c", script, h.Name, fmt.Sprint(len(mounts))}
		for _, m := range mounts {
			pre = append(pre, m[0], m[1])
		}
		p, err = w.fleet.Start("brine-minion "+s.id, w.path("hosts", s.id, "minion.log"), nil, h.Argv(append(pre, argv...)...)...)
	} else {
		p, err = h.Start("brine-minion "+s.id, w.path("hosts", s.id, "minion.log"), nil, argv...)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.minions[s.id] = p
}

// webMounts are the directories a web host keeps to itself: its minion
// (and so the nginx and uWSGI its init scripts start) runs with these
// per-host directories mounted over the machine's, in the mount
// namespace `ip netns exec` made for it. Debian's init scripts and
// configs then run unchanged (pid files in /run, the uWSGI socket in
// /run/uwsgi, logs in /var/log, nginx's temp files in /var/lib/nginx)
// without two hosts sharing one file.
func (w *world) webMounts(id string) [][2]string {
	return [][2]string{
		{w.path("hosts", id, "run"), "/run"},
		{w.path("hosts", id, "log"), "/var/log"},
		{w.path("hosts", id, "lib-nginx"), "/var/lib/nginx"},
	}
}

// prepareWebHost gives a web namespace what a Debian host with nginx,
// uwsgi and uwsgi-plugin-php installed has of its own: /etc/nginx and
// /etc/uwsgi (copies of this machine's, as the packages left them),
// /etc/init.d with Debian's nginx and uwsgi scripts, /etc/rc?.d for
// update-rc.d, and the directories of webMounts with what the packages
// create in them. `ip netns exec` bind-mounts the /etc entries over the
// machine's, so the states' edits and update-rc.d's links stay on this
// host. There is no systemd here, so service.* drives the init scripts.
func (w *world) prepareWebHost(id string) {
	t := w.t
	h := w.hosts[id]
	for _, d := range []string{"run/lock", "log/nginx", "log/uwsgi/app", "lib-nginx"} {
		if err := os.MkdirAll(w.path("hosts", id, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"nginx", "uwsgi"} {
		if out, err := exec.Command("cp", "-a", "--", filepath.Join("/etc", d), filepath.Join(h.EtcDir(), d)).CombinedOutput(); err != nil {
			t.Fatalf("copy /etc/%s for %s: %v\n%s", d, id, err, out)
		}
	}
	initd := filepath.Join(h.EtcDir(), "init.d")
	if err := os.MkdirAll(initd, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"nginx", "uwsgi"} {
		if out, err := exec.Command("cp", "-a", "--", filepath.Join("/etc/init.d", svc), initd).CombinedOutput(); err != nil {
			t.Fatalf("copy /etc/init.d/%s for %s: %v\n%s", svc, id, err, out)
		}
	}
	for _, d := range []string{"rc0.d", "rc1.d", "rc2.d", "rc3.d", "rc4.d", "rc5.d", "rc6.d", "rcS.d", "systemd/system"} {
		top := strings.Split(d, "/")[0]
		if _, err := os.Stat(filepath.Join("/etc", top)); err != nil {
			continue // nothing there to cover; ip netns exec would only warn
		}
		if err := os.MkdirAll(filepath.Join(h.EtcDir(), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// setupGit makes the bare repository that "GitHub" pushes from.
func (w *world) setupGit() {
	w.gitBare = w.path("git", "app.git")
	w.gitWork = w.path("git", "work")
	w.git("", "init", "-q", "--bare", "-b", "main", w.gitBare)
	w.git("", "init", "-q", "-b", "main", w.gitWork)
	w.git(w.gitWork, "remote", "add", "origin", w.gitBare)
}

func (w *world) git(dir string, args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Fleet", "GIT_AUTHOR_EMAIL=fleet@example.invalid",
		"GIT_COMMITTER_NAME=Fleet", "GIT_COMMITTER_EMAIL=fleet@example.invalid", "GIT_CONFIG_NOSYSTEM=1", "HOME="+w.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit commits the example app (examples/app/index.php) with a
// CHANGES line saying label, pushes it and returns the commit id.
func (w *world) commit(label string) string {
	app, err := os.ReadFile(filepath.Join(w.repo, "examples", "app", "index.php"))
	if err != nil {
		w.t.Fatal(err)
	}
	mustWrite(w.t, filepath.Join(w.gitWork, "index.php"), string(app), 0o644)
	f, err := os.OpenFile(filepath.Join(w.gitWork, "CHANGES"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	fmt.Fprintf(f, "release %s\n", label)
	f.Close()
	w.git(w.gitWork, "add", "index.php", "CHANGES")
	w.git(w.gitWork, "commit", "-q", "-m", "release "+label)
	w.git(w.gitWork, "push", "-q", "origin", "main")
	return w.git(w.gitWork, "rev-parse", "HEAD")
}

// push POSTs a GitHub push event for rev to /hook/deploy/<role>, signed
// with secret (the configured one unless a bad one is wanted).
func (w *world) push(role, before, rev string, secret []byte) (int, string) {
	body, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": before, "after": rev, "deleted": false, "forced": false,
		"repository":  map[string]any{"full_name": "acme/app", "clone_url": "file://" + w.gitBare},
		"head_commit": map[string]any{"id": rev, "message": "deploy " + rev[:7]},
		"pusher":      map[string]any{"name": "fleet"},
	})
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	var id [16]byte
	rand.Read(id[:])
	url := fmt.Sprintf("http://%s/hook/deploy/%s", net.JoinHostPort(netns.Gateway.String(), fmt.Sprint(w.hookPort)), role)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/fleet")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:]))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		w.t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.String()
}

// fetch GETs url from inside host id's namespace.
func (w *world) fetch(id, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := w.hosts[id].Command(ctx, w.self)
	cmd.Env = append(os.Environ(), helperEnv+"=httpget", urlEnv+"="+url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("GET %s from %s: %v: %s", url, id, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (w *world) in(id string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return w.hosts[id].Output(ctx, argv...)
}

func (w *world) dumpLogs() {
	logs := []string{w.path("master.log")}
	for _, s := range story {
		logs = append(logs, w.path("hosts", s.id, "minion.log"))
	}
	for _, l := range logs {
		b := readFile(l)
		if len(b) > 12000 {
			b = "...\n" + b[len(b)-12000:]
		}
		w.t.Logf("--- %s\n%s", l, b)
	}
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// ctl runs brinectl against the master's control socket. Failures go to
// the world's current (sub)test.
type ctl struct {
	w      *world
	bin    string
	socket string
}

func (c ctl) tb() *testing.T { return c.w.t }

func (c ctl) run(args ...string) (string, string, int) {
	c.tb().Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--socket", c.socket, "--no-color"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.tb().Fatalf("brinectl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// json runs brinectl with --out json and decodes stdout whatever the
// exit status (a minion that did not return exits 1 with JSON still).
func (c ctl) json(args ...string) (any, int) {
	c.tb().Helper()
	out, errs, code := c.run(append(args, "--out", "json")...)
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.tb().Fatalf("brinectl %s: exit %d, not JSON: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, err, out, errs)
	}
	return v, code
}

func (c ctl) mustJSON(args ...string) any {
	c.tb().Helper()
	v, code := c.json(args...)
	if code != 0 {
		c.tb().Fatalf("brinectl %s: exit %d: %v", strings.Join(args, " "), code, v)
	}
	return v
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", d, what)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// ---- hosts files ----

// hostsFile is a parsed hosts(5) file, read independently of brine's own
// parser so that it can judge brine's writes.
type hostsFile struct {
	lines  []string
	byName map[string][]string // name -> addresses, in file order
}

// parseHosts refuses anything a resolver would not read as intended: a
// line whose first field is not an IP address, or an address without
// names, is a half-written or broken file.
func parseHosts(content string) (hostsFile, error) {
	hf := hostsFile{byName: map[string][]string{}}
	if content != "" && !strings.HasSuffix(content, "\n") {
		return hf, fmt.Errorf("no final newline (truncated?): %q", content)
	}
	for i, line := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
		hf.lines = append(hf.lines, line)
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if _, err := netip.ParseAddr(f[0]); err != nil {
			return hf, fmt.Errorf("line %d: %q: %v", i+1, line, err)
		}
		if len(f) < 2 {
			return hf, fmt.Errorf("line %d: %q: an address without names", i+1, line)
		}
		for _, n := range f[1:] {
			hf.byName[n] = append(hf.byName[n], f[0])
		}
	}
	return hf, nil
}

// expectedHosts is what hosts.sls must produce on id: every other minion
// of its environment at its eth0 address, itself at 127.0.0.1, and
// nothing else besides the original lines.
func (w *world) expectedHosts(id string, addrs map[string]string) map[string]string {
	want := map[string]string{"localhost": "127.0.0.1", id: "127.0.0.1"}
	for _, s := range story {
		if s.id != id && s.env == w.specs[id].env {
			want[s.id] = addrs[s.id]
		}
	}
	return want
}

// checkHosts verifies one host's /etc/hosts against want (name ->
// address): parsable, original comment kept, each name once at its
// address, no other names.
func checkHosts(id, content string, want map[string]string) error {
	hf, err := parseHosts(content)
	if err != nil {
		return err
	}
	comment := strings.SplitN(originalHosts(id), "\n", 2)[0]
	if len(hf.lines) == 0 || hf.lines[0] != comment {
		return fmt.Errorf("original first line %q not kept", comment)
	}
	var errs []string
	for name, addr := range want {
		if got := hf.byName[name]; len(got) != 1 || got[0] != addr {
			errs = append(errs, fmt.Sprintf("%s: got %v, want [%s]", name, got, addr))
		}
	}
	var extra []string
	for name := range hf.byName {
		if _, ok := want[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("unexpected names %v", extra))
	}
	sort.Strings(errs)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
