// Package master is brine-master: it authenticates minions on their gRPC
// streams, publishes jobs to targeted minions and gathers their returns,
// serves brinectl on the control socket, and ties the event bus, the mine,
// the state renderer, the reactor and the webhook together.
//
// Shared state is reached through four seams (event.Bus, mine.Store,
// pki.KeyStore, job.Store) so that a cluster of masters can swap the
// in-process implementations for JetStream ones.
package master

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/job"
	"github.com/brine-cm/brine/pkg/mine"
	"github.com/brine-cm/brine/pkg/pki"
	"github.com/brine-cm/brine/pkg/reactor"
	"github.com/brine-cm/brine/pkg/registry"
	"github.com/brine-cm/brine/pkg/state/render"
	"github.com/brine-cm/brine/pkg/webhook"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// Version is reported by test.version and in Hello.
const Version = "0.1.0"

// What an unauthenticated connection on the minion port may cost: a TLS
// handshake must finish in tlsHandshakeTimeout, and until a minion on it
// is accepted it may send preAuthBurst bytes, refilled at
// preAuthPerSecond (a pending minion's keepalives).
const (
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 20 * time.Second
	preAuthBurst        = 1 << 20
	preAuthPerSecond    = 1 << 10
)

// Master is one running brine-master.
type Master struct {
	cfg  config.Master
	log  *slog.Logger
	bus  event.Bus
	keys pki.KeyStore
	jobs job.Store
	reg  *registry.Registry
	mine mine.Store
	cert tls.Certificate

	autosignToken []byte

	// admitMu makes the pending-key count and the admit of a new id one step.
	admitMu sync.Mutex
	audit   auditLimiter

	mu       sync.Mutex
	conns    map[string]*conn // accepted, live streams
	pending  map[string]*conn // streams waiting for their key to be accepted
	trackers map[string]*tracker

	runners     map[string]RunnerFunc
	minionCalls map[string]MinionCallFunc
	preparers   map[string]Preparer
	statusHooks map[string]func() any
	// hooks run on shutdown in reverse order.
	closers []func()

	// handshakes counts minion streams inside handshake(): each one
	// lengthens the wait the next may take (handshakeWait).
	handshakes atomic.Int64

	metrics    *metrics
	tree       atomic.Pointer[render.Tree]
	reactor    *reactor.Reactor
	webhook    *webhook.Server
	configPath string

	minionSrv  *grpc.Server
	controlSrv *grpc.Server
	minionLn   net.Listener
	controlLn  net.Listener
	started    time.Time

	cluster *clusterState // nil unless config cluster: is set

	trim stormTrim // returns a connect storm's free heap to the OS
}

// RunnerFunc is a master-side function brinectl calls (key.list, mine.get...).
type RunnerFunc func(ctx context.Context, args []any, kwargs map[string]any) (any, error)

// MinionCallFunc is a master-side function a minion may call; requester is
// the authenticated minion id, never taken from the message.
type MinionCallFunc func(ctx context.Context, requester string, args []any, kwargs map[string]any) (any, error)

// Preparer rewrites a job for one minion before it is sent (state.apply is
// rendered and compiled per minion here). An error becomes that minion's
// failed return; the job is not sent to it.
type Preparer func(ctx context.Context, minionID string, grains map[string]any, j *pb.Job) error

// Options are dependencies a caller may supply; nil fields get defaults.
type Options struct {
	Logger *slog.Logger
	Bus    event.Bus
	Keys   pki.KeyStore
	Jobs   job.Store
	// ConfigPath is re-read on Reload (SIGHUP).
	ConfigPath string
}

// New prepares a master from its config: keys, job cache and TLS identity
// are created under data_dir on first start.
func New(cfg config.Master, opts Options) (*Master, error) {
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(cfg.DataDir, "control.sock")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	if err := applyGOGC(cfg.GOGC); err != nil {
		return nil, err
	}
	m := &Master{
		cfg: cfg, log: opts.Logger, bus: opts.Bus, keys: opts.Keys, jobs: opts.Jobs,
		conns: map[string]*conn{}, pending: map[string]*conn{}, trackers: map[string]*tracker{},
		runners: map[string]RunnerFunc{}, minionCalls: map[string]MinionCallFunc{}, preparers: map[string]Preparer{}, statusHooks: map[string]func() any{},
		started: time.Now(), metrics: newMetrics(), configPath: opts.ConfigPath,
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.bus == nil {
		m.bus = event.NewLocal()
	}
	if lb, ok := m.bus.(*event.Local); ok {
		lb.OnPublish = func(ev event.Event) { m.metrics.event(ev.Tag) }
		lb.OnDrop = func(event.Event) { m.metrics.eventsDrop.Inc() }
	}
	m.registerGauges()
	var err error
	if m.keys == nil {
		if m.keys, err = pki.OpenFileKeyStore(filepath.Join(cfg.DataDir, "pki")); err != nil {
			return nil, fmt.Errorf("key store: %w", err)
		}
	}
	if m.jobs == nil {
		if m.jobs, err = job.OpenFileStore(filepath.Join(cfg.DataDir, "jobs")); err != nil {
			return nil, fmt.Errorf("job cache: %w", err)
		}
	}
	if m.reg, err = registry.New(); err != nil {
		return nil, err
	}
	if err := m.setupCluster(opts); err != nil {
		return nil, err
	}
	if m.cert, err = pki.LoadOrCreateMasterCert(filepath.Join(cfg.DataDir, "pki")); err != nil {
		return nil, err
	}
	if cfg.AutosignTokenFile != "" {
		b, err := os.ReadFile(cfg.AutosignTokenFile)
		if err != nil {
			return nil, fmt.Errorf("autosign_token_file: %w", err)
		}
		m.autosignToken = []byte(strings.TrimSpace(string(b)))
		if len(m.autosignToken) == 0 {
			return nil, fmt.Errorf("autosign_token_file %s is empty", cfg.AutosignTokenFile)
		}
	}
	if err := m.loadRegistry(); err != nil {
		return nil, err
	}
	m.registerCoreRunners()
	if err := m.setupMine(); err != nil {
		return nil, err
	}
	if err := m.setupStates(); err != nil {
		return nil, err
	}
	if err := m.setupReactor(); err != nil {
		return nil, err
	}
	return m, nil
}

// Bus is the master's event bus.
func (m *Master) Bus() event.Bus { return m.bus }

// Fingerprint of the master's TLS certificate, for minions' master_finger.
func (m *Master) Fingerprint() string { return pki.CertFingerprint(m.cert.Certificate[0]) }

// MinionAddr is the address the minion port listens on, once started.
func (m *Master) MinionAddr() string {
	if m.minionLn == nil {
		return ""
	}
	return m.minionLn.Addr().String()
}

// SocketPath is the control socket.
func (m *Master) SocketPath() string { return m.cfg.Socket }

// Start listens on the minion port and the control socket and serves in
// the background. Stop (or ctx ending) shuts both down.
func (m *Master) Start(ctx context.Context) error {
	addr := net.JoinHostPort(m.cfg.Interface, fmt.Sprint(m.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("minion port %s: %w", addr, err)
	}
	m.minionLn = ln
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{m.cert}, MinVersion: tls.VersionTLS13}
	// Sizes from docs/BENCHMARKS.md and shared notes: a zero read buffer
	// saves 32 KiB per TLS connection; windows stay large enough for
	// typical returns.
	m.minionSrv = grpc.NewServer(
		// Until a minion on it is accepted a connection may send a
		// handshake's worth of bytes, not a 64 MiB message.
		grpc.Creds(&pki.GatedCreds{TransportCredentials: credentials.NewTLS(tlsCfg), Burst: preAuthBurst, PerSecond: preAuthPerSecond,
			OnExceeded: func() {
				m.refuse(context.Background(), "preauth_budget", "", "connection sent too much before authenticating")
			}}),
		grpc.ConnectionTimeout(tlsHandshakeTimeout),
		// A minion uses one stream per connection.
		grpc.MaxConcurrentStreams(4),
		// The Control service lives on the unix socket only; asking for it
		// (or anything else) here is an attempt at an operator action.
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(ss)
			m.refuse(ss.Context(), "wrong_service", "", method+" is not served on the minion port")
			return status.Errorf(codes.PermissionDenied, "%s is not served on the minion port", method)
		}),
		grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(4096),
		// An idle stream holds no write buffer: it is taken from a pool
		// for each flush.
		grpc.SharedWriteBuffer(true),
		// Fixed windows switch off BDP-driven flow control, which cost
		// ~25% of a 10,000-minion ping round; 1 MiB keeps a typical state
		// return in one window (a window reserves no memory).
		grpc.InitialWindowSize(1<<20),
		grpc.InitialConnWindowSize(1<<20),
		grpc.MaxRecvMsgSize(64<<20),
		grpc.MaxSendMsgSize(64<<20),
		// MaxConnectionIdle: a minion always has its stream open (pending
		// ones too), so a connection without one is nobody's.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 15 * time.Second, Timeout: 10 * time.Second, MaxConnectionIdle: idleConnTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	pb.RegisterMinionLinkServer(m.minionSrv, &linkServer{m: m})

	if err := m.listenControl(); err != nil {
		ln.Close()
		return err
	}
	m.controlSrv = grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	pb.RegisterControlServer(m.controlSrv, &controlServer{m: m})

	if err := m.startCluster(ctx); err != nil {
		ln.Close()
		m.controlLn.Close()
		return err
	}
	go func() {
		if err := m.minionSrv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			m.log.Error("minion port stopped", "err", err)
		}
	}()
	go func() {
		if err := m.controlSrv.Serve(m.controlLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			m.log.Error("control socket stopped", "err", err)
		}
	}()
	go m.pruneJobs(ctx)
	m.startBackground(ctx)
	m.log.Info("master started", "minion_addr", ln.Addr().String(), "socket", m.cfg.Socket, "finger", m.Fingerprint())
	return nil
}

func (m *Master) listenControl() error {
	path := m.cfg.Socket
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if _, err := os.Stat(path); err == nil {
		// A socket nobody answers on is a leftover from a crash.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("control socket %s: another master is running", path)
		}
		os.Remove(path)
	}
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	m.controlLn = ln
	return nil
}

// Stop closes every stream and listener.
func (m *Master) Stop() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
	if m.controlSrv != nil {
		m.controlSrv.Stop()
	}
	if m.minionSrv != nil {
		stopped := make(chan struct{})
		go func() { m.minionSrv.GracefulStop(); close(stopped) }()
		m.mu.Lock()
		for _, c := range m.conns {
			c.cancel()
		}
		for _, c := range m.pending {
			c.cancel()
		}
		m.mu.Unlock()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			m.minionSrv.Stop()
		}
	}
	os.Remove(m.cfg.Socket)
	// After the streams: returns still arriving are in the job cache's
	// last flush (it syncs saved jobs only every second otherwise).
	if err := m.jobs.Close(); err != nil {
		m.log.Warn("job cache close", "err", err)
	}
	m.closeCluster()
}

func (m *Master) pruneJobs(ctx context.Context) {
	keep := time.Duration(m.cfg.KeepJobs * float64(time.Hour))
	if keep <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := m.jobs.Prune(ctx, time.Now().Add(-keep)); err != nil {
			m.log.Warn("job cache prune", "err", err)
		} else if n > 0 {
			m.log.Info("job cache pruned", "jobs", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loadRegistry makes every accepted minion known (offline) at start so that
// targeting reports them as not connected rather than unknown.
func (m *Master) loadRegistry() error {
	keys, err := m.keys.List(context.Background())
	if err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	grains := m.loadGrainsCache()
	for _, k := range keys {
		if k.State != pki.Accepted {
			continue
		}
		if err := m.reg.Upsert(registry.Minion{ID: k.ID, Grains: grains[k.ID]}); err != nil {
			return err
		}
	}
	return nil
}

func (m *Master) publish(tag string, data map[string]any) {
	if err := m.bus.Publish(context.Background(), tag, data); err != nil {
		m.log.Warn("event publish failed", "tag", tag, "err", err)
	}
}

// applyGOGC sets the collector's target from the gogc setting: with
// thousands of idle minions the heap is mostly their connections, and Go's
// default lets it grow by as much again before collecting
// (docs/memory.md). An operator's GOGC environment variable wins.
func applyGOGC(percent int) error {
	if percent < 0 {
		return fmt.Errorf("gogc %d: must be a percentage, or 0 for Go's default", percent)
	}
	if percent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
	return nil
}

func (m *Master) tokenOK(tok string) bool {
	if len(m.autosignToken) == 0 || tok == "" {
		return false
	}
	return subtle.ConstantTimeCompare(m.autosignToken, []byte(tok)) == 1
}
