// Package cluster runs several brine masters as one on NATS JetStream.
//
// A Node is one master's handle on the cluster: an embedded nats-server
// with JetStream (clustered with its peers over routes), or a client
// connection to an existing NATS cluster. On it sit JetStream-backed
// implementations of the master's seams — event.Bus (Bus), pki.KeyStore
// (KeyStore), mine.Store (MineStore), job.Store (JobStore) — plus the
// shared minion presence (Presence) and the reactor's work queue
// (ReactQueue). Nothing here replicates anything itself: every shared
// byte lives in a JetStream stream or KV bucket.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brine-cm/brine/pkg/config"
)

// routeUser is the user name masters present to each other on routes; the
// password is the shared secret.
const routeUser = "brine"

// Node is one master's membership in the cluster.
type Node struct {
	cfg      config.Cluster
	log      *slog.Logger
	srv      *server.Server // nil with nats_urls
	nc       *nats.Conn
	js       jetstream.JetStream
	id       string // this master process; new on every start
	replicas int
}

// Options tune Start; zero values are the defaults.
type Options struct {
	Logger *slog.Logger
	// Secret authenticates routes and clients (cluster.secret_file's
	// content). Empty is allowed only when every listener is on loopback.
	Secret string
	// ReadyTimeout bounds the wait for a JetStream quorum (default 5 min:
	// the first master of a fresh cluster waits for its peers).
	ReadyTimeout time.Duration
}

// Check validates a cluster block; errors name the key at fault.
func Check(c config.Cluster) error {
	if c.Name == "" {
		return errors.New("cluster.name: required (all masters of one cluster share it)")
	}
	for _, r := range c.Name {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("cluster.name %q: only letters, digits, '-' and '_'", c.Name)
		}
	}
	if len(c.NATSURLs) > 0 {
		if c.NATSListen != "" || c.RoutesListen != "" || len(c.Routes) > 0 {
			return errors.New("cluster.nats_urls: use either an existing NATS cluster (nats_urls) or the embedded server (nats_listen, routes_listen, routes), not both")
		}
		for _, u := range c.NATSURLs {
			if _, err := url.Parse(u); err != nil || !strings.Contains(u, "://") {
				return fmt.Errorf("cluster.nats_urls: %q is not a URL like nats://host:4222", u)
			}
		}
		return nil
	}
	if c.NATSListen != "" {
		if _, _, err := splitHostPort(c.NATSListen); err != nil {
			return fmt.Errorf("cluster.nats_listen %q: %w", c.NATSListen, err)
		}
	}
	if c.RoutesListen != "" {
		if _, _, err := splitHostPort(c.RoutesListen); err != nil {
			return fmt.Errorf("cluster.routes_listen %q: %w", c.RoutesListen, err)
		}
	}
	if len(c.Routes) > 0 && c.RoutesListen == "" {
		return errors.New("cluster.routes_listen: required when cluster.routes names peers")
	}
	for _, r := range c.Routes {
		if _, _, err := splitHostPort(strings.TrimPrefix(r, "nats-route://")); err != nil {
			return fmt.Errorf("cluster.routes: %q: %w", r, err)
		}
	}
	return nil
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, n, nil
}

func isLoopback(hostport string) bool {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Start joins the cluster: it starts the embedded NATS server (or dials
// nats_urls), connects, and waits until JetStream has a quorum.
func Start(ctx context.Context, c config.Cluster, dataDir string, o Options) (*Node, error) {
	if err := Check(c); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "cluster")
	n := &Node{cfg: c, log: log, id: instanceID()}
	natsDir := filepath.Join(dataDir, "nats")
	if err := os.MkdirAll(natsDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	copts := []nats.Option{
		nats.Name("brine-master " + n.id),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(32 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("NATS async error", "subject", subj, "err", err)
		}),
	}
	if o.Secret != "" {
		copts = append(copts, nats.Token(o.Secret))
	}
	size := 1
	if len(c.NATSURLs) == 0 {
		if o.Secret == "" {
			for _, a := range []string{c.NATSListen, c.RoutesListen} {
				if a != "" && !isLoopback(a) {
					return nil, fmt.Errorf("cluster.secret_file: required when the embedded NATS server listens beyond loopback (%s): whoever reaches it could run jobs on every minion", a)
				}
			}
		}
		srv, err := n.startServer(natsDir, o.Secret)
		if err != nil {
			return nil, err
		}
		n.srv = srv
		copts = append(copts, nats.InProcessServer(srv))
		size = 1 + len(peerRoutes(c))
	}
	url := strings.Join(c.NATSURLs, ",")
	nc, err := nats.Connect(url, copts...)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("cluster: connect to NATS %s: %w", redact(url), err)
	}
	n.nc = nc
	if n.srv == nil {
		size = len(nc.Servers())
	}
	n.replicas = min(3, max(size, 1))
	js, err := jetstream.New(nc)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	n.js = js
	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if err := n.waitReady(ctx, timeout); err != nil {
		n.Close()
		return nil, err
	}
	log.Info("joined cluster", "cluster", c.Name, "instance", n.id, "replicas", n.replicas, "embedded", n.srv != nil)
	return n, nil
}

// peerRoutes are the configured routes other than our own listener: the
// same list can then be given to every master. A route is ours when its
// port is our route port and its host is our listen host or an address
// of this machine.
func peerRoutes(c config.Cluster) []string {
	ownHost, ownPort, err := splitHostPort(c.RoutesListen)
	local := map[string]bool{ownHost: true}
	if addrs, aerr := net.InterfaceAddrs(); aerr == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				local[ipn.IP.String()] = true
			}
		}
	}
	var out []string
	for _, r := range c.Routes {
		hp := strings.TrimPrefix(r, "nats-route://")
		if err == nil {
			if h, p, perr := splitHostPort(hp); perr == nil && p == ownPort {
				if ip := net.ParseIP(h); local[h] || h == "localhost" || ip != nil && local[ip.String()] {
					continue
				}
			}
		}
		out = append(out, hp)
	}
	return out
}

func redact(u string) string {
	var out []string
	for _, s := range strings.Split(u, ",") {
		if p, err := url.Parse(s); err == nil && p.User != nil {
			p.User = url.User("redacted")
			s = p.String()
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// instanceID names this master process on the cluster. It is new on every
// start, so a restarted master is never mistaken for its dead former self
// (whose minions, presence and routes are stale).
func instanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, host)
	if clean == "" {
		clean = "master"
	}
	return clean + "-" + hex.EncodeToString(b[:])
}

// serverName is the embedded server's JetStream identity. Unlike the
// instance id it must survive restarts (JetStream peers are known by it),
// so it is made once and kept in data_dir/nats/server_name.
func serverName(natsDir string) (string, error) {
	p := filepath.Join(natsDir, "server_name")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	name := instanceID()
	if err := os.WriteFile(p, []byte(name+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	return name, nil
}

func (n *Node) startServer(natsDir, secret string) (*server.Server, error) {
	c := n.cfg
	name, err := serverName(natsDir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:         name,
		JetStream:          true,
		StoreDir:           natsDir,
		JetStreamMaxMemory: 64 << 20, // everything brine keeps is on file storage
		NoSigs:             true,
		MaxPayload:         8 << 20, // a state.apply return can be large
		Authorization:      secret,
	}
	if c.NATSListen != "" {
		opts.Host, opts.Port, _ = splitHostPort(c.NATSListen)
	} else {
		opts.DontListen = true // masters connect in-process
	}
	if c.RoutesListen != "" {
		h, p, _ := splitHostPort(c.RoutesListen)
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: h, Port: p, ConnectRetries: -1}
		if secret != "" {
			opts.Cluster.Username, opts.Cluster.Password = routeUser, secret
		}
		for _, r := range peerRoutes(c) {
			u := &url.URL{Scheme: "nats-route", Host: r}
			if secret != "" {
				u.User = url.UserPassword(routeUser, secret)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(natsLogger{n.log.With("nats_server", name)}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("cluster: embedded NATS server did not start (nats_listen %q, routes_listen %q)", c.NATSListen, c.RoutesListen)
	}
	return srv, nil
}

// waitReady blocks until JetStream answers (a meta leader is elected),
// which in a fresh cluster means a majority of the masters are up.
func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lastLog := time.Now()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := n.js.AccountInfo(actx)
		acancel()
		if err == nil {
			return nil
		}
		if time.Since(lastLog) > 5*time.Second {
			n.log.Info("waiting for a JetStream quorum of masters", "err", err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %s: JetStream not ready after %s (are a majority of the masters up and routed?): %w", n.cfg.Name, timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ID is this master process's name on the cluster.
func (n *Node) ID() string { return n.id }

// Conn is the NATS connection.
func (n *Node) Conn() *nats.Conn { return n.nc }

// JetStream is the JetStream context.
func (n *Node) JetStream() jetstream.JetStream { return n.js }

// Replicas is the replica count of every stream and bucket: min(3, the
// number of servers).
func (n *Node) Replicas() int { return n.replicas }

// ClientURL is the embedded server's client URL ("" with nats_urls or
// without nats_listen).
func (n *Node) ClientURL() string {
	if n.srv == nil || n.cfg.NATSListen == "" {
		return ""
	}
	return n.srv.ClientURL()
}

// Status is a snapshot for `brinectl status`.
func (n *Node) Status() map[string]any {
	st := map[string]any{"name": n.cfg.Name, "instance": n.id, "replicas": n.replicas,
		"nats_connected": n.nc != nil && n.nc.IsConnected(), "embedded": n.srv != nil}
	if n.srv != nil {
		st["routes"] = n.srv.NumRoutes()
	}
	return st
}

// Close drains the connection and stops the embedded server.
func (n *Node) Close() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// kv opens bucket cfg.Bucket, creating it when missing. An existing
// bucket is used as it is: a master restarting while a peer is down
// cannot re-place replicas, and must not need to.
func (n *Node) kv(ctx context.Context, cfg jetstream.KeyValueConfig) (*rkv, error) {
	cfg.Replicas = n.replicas
	cfg.Storage = jetstream.FileStorage
	var kv jetstream.KeyValue
	err := n.ensure(ctx, cfg.Bucket, func(actx context.Context) (bool, error) {
		var err error
		if kv, err = n.js.KeyValue(actx, cfg.Bucket); err == nil {
			return true, nil
		} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return false, err
		}
		kv, err = n.js.CreateKeyValue(actx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			return false, nil // a peer made it meanwhile: open it
		}
		return err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return &rkv{n: n, kv: kv}, nil
}

// stream is kv for a plain stream.
func (n *Node) stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = n.replicas
	cfg.Storage = jetstream.FileStorage
	var st jetstream.Stream
	err := n.ensure(ctx, cfg.Name, func(actx context.Context) (bool, error) {
		var err error
		if st, err = n.js.Stream(actx, cfg.Name); err == nil {
			return true, nil
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return false, err
		}
		st, err = n.js.CreateStream(actx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return false, nil
		}
		return err == nil, err
	})
	return st, err
}

// ensure retries attempt until it succeeds, fails for good, or ctx ends.
// Each attempt has its own deadline: while a fresh cluster elects its
// leaders an API request may go unanswered, and must not hold the whole
// start-up wait.
func (n *Node) ensure(ctx context.Context, name string, attempt func(context.Context) (bool, error)) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := attempt(actx)
		cancel()
		if ok {
			return nil
		}
		if err != nil && !retryable(err) {
			return fmt.Errorf("cluster: %s (replicas %d): %w", name, n.replicas, err)
		}
		if err != nil {
			n.log.Info("JetStream not ready for "+name+", retrying", "err", err)
		}
		if serr := sleep(ctx, 500*time.Millisecond); serr != nil {
			return fmt.Errorf("cluster: %s: %w (last error: %v)", name, serr, err)
		}
	}
}

// retryable: a fresh cluster whose peers are still arriving cannot place
// R3 yet, or has no leader for a moment.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10023 /* insufficient resources */, 10005 /* no suitable peers */, 10008 /* temporarily unavailable */ :
			return true
		}
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		strings.Contains(err.Error(), "no suitable peers") || strings.Contains(err.Error(), "insufficient resources")
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// natsLogger sends the embedded server's log to slog. Notices are
// startup chatter: debug level.
type natsLogger struct{ l *slog.Logger }

func (l natsLogger) Noticef(f string, v ...any) { l.l.Debug(fmt.Sprintf(f, v...)) }
func (l natsLogger) Warnf(f string, v ...any)   { l.l.Warn(fmt.Sprintf(f, v...)) }
func (l natsLogger) Fatalf(f string, v ...any)  { l.l.Error(fmt.Sprintf(f, v...)) }
func (l natsLogger) Errorf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	if strings.HasPrefix(msg, "Error trying to connect to route") {
		// Repeated every second while a peer is down; the heartbeat
		// watch reports a silent master once.
		l.l.Debug(msg)
		return
	}
	l.l.Error(msg)
}
func (l natsLogger) Debugf(string, ...any) {}
func (l natsLogger) Tracef(string, ...any) {}
