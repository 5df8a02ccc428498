package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/brine-cm/brine/pkg/ctl"
	"github.com/brine-cm/brine/pkg/pki"
)

// masterProc is a brine-master process the generator started.
type masterProc struct {
	cmd         *exec.Cmd
	pid         int
	dataDir     string
	socket      string
	minionAddr  string
	webhookAddr string
	metricsAddr string
	finger      string
	token       string
	hookSecret  []byte
	client      *ctl.Client
	exited      chan struct{} // closed when the process is gone
}

// alive is an error once the master process has exited: a scenario
// waiting on it would otherwise wait out its whole timeout.
func (mp *masterProc) alive() error {
	select {
	case <-mp.exited:
		return fmt.Errorf("brine-master (pid %d) exited; see %s", mp.pid, filepath.Join(filepath.Dir(mp.dataDir), "master.log"))
	default:
		return nil
	}
}

// reactorSLS turns each benchmark hook into one job. The hook's number
// travels as the job's argument, through |tojson, so the subscriber can
// match the job/<jid>/new event to the request that caused it.
const reactorSLS = `bench_hook:
  local.test.echo:
    - tgt: {{ target | tojson }}
    - arg:
      - {{ data['post']['n'] | tojson }}
`

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startMaster writes a master config under dir and runs bin as a process:
// autosign token enrollment, the repository's hosts.sls in its state tree,
// mine functions pushed to minions, a signed webhook path and a reactor
// rule for it.
func startMaster(ctx context.Context, bin, dir, statesDir, hookTarget string) (*masterProc, error) {
	mp := &masterProc{dataDir: filepath.Join(dir, "master"), token: randHex(16), hookSecret: []byte(randHex(16))}
	mp.socket = filepath.Join(mp.dataDir, "control.sock")
	tree := filepath.Join(dir, "states")
	for _, d := range []string{mp.dataDir, tree, filepath.Join(dir, "pillar")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("bench dir: %w", err)
		}
	}
	hosts, err := os.ReadFile(filepath.Join(statesDir, "hosts.sls"))
	if err != nil {
		return nil, fmt.Errorf("states dir: %w", err)
	}
	reactor := strings.ReplaceAll(reactorSLS, "{{ target | tojson }}", fmt.Sprintf("%q", hookTarget))
	files := map[string][]byte{
		filepath.Join(tree, "hosts.sls"):        hosts,
		filepath.Join(tree, "bench-hook.sls"):   []byte(reactor),
		filepath.Join(dir, "autosign.token"):    []byte(mp.token + "\n"),
		filepath.Join(dir, "hook.secret"):       mp.hookSecret,
		filepath.Join(dir, "pillar", "top.sls"): []byte("base: {}\n"),
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return nil, fmt.Errorf("bench file: %w", err)
		}
	}
	// The certificate is made here, not by the master, so that minions can
	// pin its fingerprint from the start.
	cert, err := pki.LoadOrCreateMasterCert(filepath.Join(mp.dataDir, "pki"))
	if err != nil {
		return nil, err
	}
	mp.finger = pki.CertFingerprint(cert.Certificate[0])
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	hookPort, err := freePort()
	if err != nil {
		return nil, err
	}
	mp.minionAddr = fmt.Sprintf("127.0.0.1:%d", port)
	mp.webhookAddr = fmt.Sprintf("127.0.0.1:%d", hookPort)
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	mp.metricsAddr = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	cfg := map[string]any{
		"interface":           "127.0.0.1",
		"port":                port,
		"data_dir":            mp.dataDir,
		"socket":              mp.socket,
		"autosign_token_file": filepath.Join(dir, "autosign.token"),
		"log_level":           "warning",
		"metrics_listen":      mp.metricsAddr,
		"metrics_pprof":       true, // profile the master while it is under load (go tool pprof http://<addr>/debug/pprof/heap)
		"file_roots":          map[string]any{"base": []any{tree}},
		"pillar_roots":        map[string]any{"base": []any{filepath.Join(dir, "pillar")}},
		"mine_functions":      map[string]any{"network.ip_addrs": []any{}, "network.get_hostname": []any{}},
		"reactor":             []any{map[string]any{"salt/netapi/hook/bench/*": []any{filepath.Join(tree, "bench-hook.sls")}}},
		"webhook": map[string]any{
			"listen": mp.webhookAddr,
			"hooks":  map[string]any{"bench/*": map[string]any{"github_secret_file": filepath.Join(dir, "hook.secret")}},
		},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "master.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, fmt.Errorf("master config: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "master.log"))
	if err != nil {
		return nil, fmt.Errorf("master log: %w", err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	logf.Close()
	mp.cmd, mp.pid = cmd, cmd.Process.Pid
	exited := make(chan error, 1)
	mp.exited = make(chan struct{})
	go func() { exited <- cmd.Wait(); close(mp.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := ctl.Dial(ctx, mp.socket)
		if err == nil {
			mp.client = c
			break
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("brine-master exited at start (%v); see %s", err, filepath.Join(dir, "master.log"))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			mp.stop()
			return nil, fmt.Errorf("brine-master did not open %s within 30 s: %w", mp.socket, err)
		}
	}
	// The webhook listener starts in the background after the socket.
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", mp.webhookAddr, time.Second); err == nil {
			c.Close()
			return mp, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	mp.stop()
	return nil, errors.New("brine-master webhook did not listen within 30 s")
}

func (mp *masterProc) stop() {
	if mp.client != nil {
		mp.client.Close()
	}
	if mp.cmd == nil || mp.cmd.Process == nil {
		return
	}
	_ = mp.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			if err := syscall.Kill(mp.pid, 0); err != nil {
				close(done)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = mp.cmd.Process.Kill()
	}
}

// goMetrics reads the master's Go runtime gauges from its /metrics
// endpoint: RSS alone cannot tell live heap from stacks and GC headroom.
func (mp *masterProc) goMetrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+mp.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("master metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "go_") && !strings.HasPrefix(line, "brine_") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out, sc.Err()
}
