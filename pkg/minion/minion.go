// Package minion is brine-minion: it keeps one authenticated stream to its
// master, runs the jobs it is sent, publishes its mine, and reconnects
// forever with backoff and jitter when the master goes away.
package minion

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	backoffConfig "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/exec"
	"github.com/brine-cm/brine/pkg/grains"
	"github.com/brine-cm/brine/pkg/mine"
	"github.com/brine-cm/brine/pkg/pki"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// Version is sent in Hello and returned by test.version.
const Version = "0.1.0"

var (
	errReconnectNow = errors.New("reconnect now")
	errKeyRefused   = errors.New("key refused by master")
)

// Minion is one running brine-minion.
type Minion struct {
	cfg  config.Minion
	log  *slog.Logger
	priv ed25519.PrivateKey
	exec *exec.Registry
	env  *exec.Env

	pinMu sync.Mutex

	grainsMu sync.RWMutex
	grains   map[string]any
	// hello is grains in wire form for Hello, made once per grains
	// refresh: a minion retrying through a reconnect storm would
	// otherwise convert its ~170 grains again on every attempt.
	hello *structpb.Struct

	mine      *mine.Scheduler
	localMine []mine.FuncSpec

	mu      sync.Mutex
	sendCh  chan *pb.MinionMessage // current session's outbound queue; nil when down
	calls   map[string]chan *pb.MasterCallReply
	callSeq atomic.Uint64
	// outbox holds returns finished while the master was unreachable;
	// they are sent first after the next connect, so nothing is lost.
	outbox []*pb.MinionMessage
	// unacked holds returns sent on the current stream that the master has
	// not acknowledged (by jid); a stream that breaks moves them back to
	// the outbox, because bytes written to a dying TCP connection are not
	// a delivery.
	unacked map[string]*pb.MinionMessage

	// seen holds the jids this process has run: a job offered again (after
	// a reconnect, or by a second master of a cluster) runs once.
	seen jidSet

	// states lets one state run at a time (see stateQueue).
	states stateQueue

	connected atomic.Bool
	lastUp    atomic.Int64 // when the current session was accepted (unix ns); 0 if it was not
	// State of the key as the master last said (for tests and logs).
	keyState atomic.Value
	// OnConnect, when set, is called after each accepted connect.
	OnConnect func()
}

// New prepares a minion: loads (or creates) its key, computes grains.
func New(cfg config.Minion, log *slog.Logger) (*Minion, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ID == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("minion id: %w", err)
		}
		cfg.ID = h
	}
	if err := pki.ValidateID(cfg.ID); err != nil {
		return nil, fmt.Errorf("minion id: %w", err)
	}
	if len(cfg.Master) == 0 {
		return nil, errors.New("minion config: no master")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	priv, err := pki.LoadOrCreateEd25519(filepath.Join(cfg.DataDir, "pki", "minion.key"))
	if err != nil {
		return nil, err
	}
	m := &Minion{cfg: cfg, log: log.With("minion", cfg.ID), priv: priv, calls: map[string]chan *pb.MasterCallReply{},
		unacked: map[string]*pb.MinionMessage{}}
	m.keyState.Store("")
	if err := m.refreshGrains(context.Background()); err != nil {
		return nil, err
	}
	m.exec = exec.NewRegistry()
	m.env = &exec.Env{ID: cfg.ID, Grains: m.Grains, Master: masterCaller{m}, Logger: m.log}
	m.registerFunctions()
	specs, err := mine.ParseFunctions(cfg.MineFunctions)
	if err != nil {
		return nil, fmt.Errorf("minion config mine_functions: %w", err)
	}
	m.localMine = specs
	interval := time.Duration(cfg.MineInterval * float64(time.Minute))
	m.mine = mine.NewScheduler(specs, m.runForMine, m.publishMine, interval, m.log)
	// Negative turns change detection off (the scheduler's convention):
	// Salt's behaviour, and what a load generator running thousands of
	// minions on one host's interfaces needs (a netlink socket each would
	// exhaust its open files).
	if cfg.MineChangePoll != 0 {
		m.mine.ChangePoll = time.Duration(cfg.MineChangePoll * float64(time.Second))
	}
	return m, nil
}

// ID is the minion id.
func (m *Minion) ID() string { return m.cfg.ID }

// PublicKey is the minion's identity key.
func (m *Minion) PublicKey() ed25519.PublicKey { return m.priv.Public().(ed25519.PublicKey) }

// Connected reports whether an accepted stream is up.
func (m *Minion) Connected() bool { return m.connected.Load() }

// KeyState is what the master last said of this minion's key.
func (m *Minion) KeyState() string { return m.keyState.Load().(string) }

// Grains returns the current grains (core merged with static).
func (m *Minion) Grains() map[string]any {
	m.grainsMu.RLock()
	defer m.grainsMu.RUnlock()
	return m.grains
}

func (m *Minion) refreshGrains(ctx context.Context) error {
	core, err := grains.Core(ctx)
	if err != nil {
		// Partial grains beat no minion: Core still returns what it read.
		m.log.Warn("some core grains could not be read", "err", err)
	}
	if core == nil {
		core = map[string]any{}
	}
	g := grains.Merge(core, m.cfg.Grains)
	g["id"] = m.cfg.ID
	m.grainsMu.Lock()
	m.grains = g
	m.hello = nil
	m.grainsMu.Unlock()
	return nil
}

// helloGrains is the grains as Hello carries them (see Minion.hello).
func (m *Minion) helloGrains() (*structpb.Struct, error) {
	m.grainsMu.Lock()
	defer m.grainsMu.Unlock()
	if m.hello == nil {
		g, err := wire.Struct(m.grains)
		if err != nil {
			return nil, err
		}
		m.hello = g
	}
	return m.hello, nil
}

// Run connects and serves until ctx ends, reconnecting with exponential
// backoff and jitter, failing over through the master list in order.
func (m *Minion) Run(ctx context.Context) error {
	go func() {
		if err := m.mine.Run(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("mine scheduler stopped", "err", err)
		}
	}()
	bo := newBackoff(m.cfg.ReconDefault, m.cfg.ReconMax, m.cfg.ReconRandomize)
	if d := m.cfg.RandomStartupDelay; d > 0 {
		// Salt's random_startup_delay: a fleet booted together does not
		// reach the master in the same second.
		wait := time.Duration(rand.Int64N(int64(d * float64(time.Second))))
		m.log.Info("random_startup_delay", "wait", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	idx := 0
	for {
		addr := m.masterAddr(idx)
		err := m.session(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		// A connection that stayed up a while was a working one: the
		// next failure starts the backoff over. One dropped right after
		// its welcome (a master shedding load) is not.
		if up := m.lastUp.Load(); up > 0 && time.Since(time.Unix(0, up)) > sessionResetAfter {
			bo.reset()
		}
		m.lastUp.Store(0)
		var wait time.Duration
		switch {
		case errors.Is(err, errReconnectNow):
			wait = 0
		case errors.Is(err, errKeyRefused):
			wait = time.Duration(m.cfg.AcceptanceWaitTime * float64(time.Second))
		default:
			wait = bo.next()
			idx++ // fail over to the next master, if any
		}
		m.log.Info("disconnected from master", "master", addr, "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// sessionResetAfter is how long a connection must have been accepted for
// the reconnect backoff to start over after it breaks.
const sessionResetAfter = 30 * time.Second

// connectTimeout bounds TCP, TLS and the HTTP/2 preface of one attempt.
// A master taking a reconnect storm serves TLS handshakes oldest first
// (pkg/pki's handshake turns) and queues the rest: a minion that gave up
// after gRPC's default 20 s would throw its place away and start over at
// the back, which is how a storm of 10,000 never ended.
const connectTimeout = 2 * time.Minute

func (m *Minion) masterAddr(i int) string {
	a := m.cfg.Master[i%len(m.cfg.Master)]
	if _, _, err := net.SplitHostPort(a); err != nil {
		port := m.cfg.MasterPort
		if port == 0 {
			port = 4506
		}
		return net.JoinHostPort(a, strconv.Itoa(port))
	}
	return a
}

// session is one connection's life: handshake, then serve jobs until the
// stream breaks.
func (m *Minion) session(ctx context.Context, addr string) error {
	creds := newCaptureCreds(m.pinningTLS(addr))
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithReadBufferSize(0),
		grpc.WithWriteBufferSize(4096),
		grpc.WithSharedWriteBuffer(true),
		// As on the master (see there): fixed windows, no BDP probing.
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(1<<20),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		// A 20 s ack timeout: at 5 s a master busy with a reconnect storm
		// looked dead to the minions it had just accepted, which then
		// joined the storm again (brine-bench, 10,000 minions).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 20 * time.Second, PermitWithoutStream: true}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoffConfig.DefaultConfig, MinConnectTimeout: connectTimeout}),
		grpc.WithContextDialer(dialInTurn),
	)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pb.NewMinionLinkClient(cc).Connect(sctx)
	if err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	g, err := m.helloGrains()
	if err != nil {
		return fmt.Errorf("grains: %w", err)
	}
	if err := stream.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Hello{Hello: &pb.Hello{
		Id: m.cfg.ID, PublicKey: m.PublicKey(), Grains: g, Version: Version, AutosignToken: m.cfg.AutosignToken,
	}}}); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	msg, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	ch := msg.GetChallenge()
	if ch == nil || len(ch.GetNonce()) < 16 {
		return errors.New("handshake: master sent no challenge")
	}
	exporter, err := pki.Exporter(creds.connState())
	if err != nil {
		return err
	}
	sig := ed25519.Sign(m.priv, pki.AuthTranscript(m.cfg.ID, ch.GetNonce(), exporter))
	if err := stream.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Proof{Proof: &pb.Proof{Signature: sig}}}); err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	for {
		msg, err = stream.Recv()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		w := msg.GetWelcome()
		if w == nil {
			return errors.New("handshake: expected welcome")
		}
		m.keyState.Store(w.GetKeyState())
		switch w.GetKeyState() {
		case "accepted":
			m.lastUp.Store(time.Now().UnixNano())
			go m.watchLocalAddr(sctx, creds.localAddr(), cancel)
			return m.serve(sctx, stream, w)
		case "pending":
			m.log.Info("key pending acceptance on the master", "finger", pki.Fingerprint(m.PublicKey()))
			// The master keeps the stream and sends "accepted" when an
			// operator accepts the key.
			msg, err = stream.Recv()
			if err != nil {
				return fmt.Errorf("waiting for key acceptance: %w", err)
			}
			if w2 := msg.GetWelcome(); w2 != nil && w2.GetKeyState() == "accepted" {
				m.keyState.Store("accepted")
				m.log.Info("key accepted")
				return errReconnectNow
			}
			return errors.New("unexpected message while pending")
		default:
			m.log.Error("master refused this minion's key", "key_state", w.GetKeyState(), "finger", pki.Fingerprint(m.PublicKey()))
			return fmt.Errorf("%w: %s", errKeyRefused, w.GetKeyState())
		}
	}
}

func (m *Minion) serve(ctx context.Context, stream pb.MinionLink_ConnectClient, w *pb.Welcome) error {
	m.applyPushedConfig(wire.Map(w.GetConfig()))
	sendCh := make(chan *pb.MinionMessage, 1024)
	m.mu.Lock()
	m.sendCh = sendCh
	backlog := m.outbox
	m.outbox = nil
	m.mu.Unlock()
	m.connected.Store(true)
	defer func() {
		m.connected.Store(false)
		m.mu.Lock()
		m.sendCh = nil
		// Returns not acknowledged, and anything still queued, are kept
		// for the next connection.
		queued := map[string]bool{}
		for _, msg := range m.outbox {
			queued[msg.GetRet().GetJid()] = true
		}
		for jid, msg := range m.unacked {
			if !queued[jid] {
				m.outbox = append(m.outbox, msg)
			}
			delete(m.unacked, jid)
		}
		for {
			select {
			case msg := <-sendCh:
				if msg.GetRet() != nil {
					m.outbox = append(m.outbox, msg)
				}
				continue
			default:
			}
			break
		}
		for id, ch := range m.calls {
			close(ch)
			delete(m.calls, id)
		}
		m.mu.Unlock()
	}()
	m.log.Info("connected to master")

	sendErr := make(chan error, 1)
	go func() {
		for _, msg := range backlog {
			m.trackUnacked(msg)
			if err := stream.Send(msg); err != nil {
				m.mu.Lock()
				m.outbox = append(m.outbox, msg)
				m.mu.Unlock()
				sendErr <- err
				return
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case msg := <-sendCh:
				m.trackUnacked(msg)
				if err := stream.Send(msg); err != nil {
					if msg.GetRet() != nil {
						m.mu.Lock()
						m.outbox = append(m.outbox, msg)
						m.mu.Unlock()
					}
					sendErr <- err
					return
				}
			}
		}
	}()
	// A fresh connection re-publishes the whole mine: the master may have
	// restarted or flushed it meanwhile.
	go func() {
		if err := m.mine.Refresh(ctx, true); err != nil && ctx.Err() == nil {
			m.log.Warn("mine refresh after connect", "err", err)
		}
	}()
	if m.OnConnect != nil {
		m.OnConnect()
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			switch x := msg.Msg.(type) {
			case *pb.MasterMessage_Job:
				if !m.seen.add(x.Job.GetJid()) {
					m.log.Warn("job not run: its jid was already received", "jid", x.Job.GetJid(), "fun", x.Job.GetFun())
					continue
				}
				go m.runJob(ctx, x.Job)
			case *pb.MasterMessage_CallReply:
				m.mu.Lock()
				ch := m.calls[x.CallReply.GetCallId()]
				delete(m.calls, x.CallReply.GetCallId())
				m.mu.Unlock()
				if ch != nil {
					ch <- x.CallReply
				}
			case *pb.MasterMessage_Ack:
				m.mu.Lock()
				delete(m.unacked, x.Ack.GetJid())
				m.mu.Unlock()
			case *pb.MasterMessage_Ping:
				m.send(&pb.MinionMessage{Msg: &pb.MinionMessage_Pong{Pong: &pb.Pong{Seq: x.Ping.GetSeq()}}})
			}
		}
	}()
	select {
	case err := <-recvErr:
		return err
	case err := <-sendErr:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send queues a message on the current stream; false when disconnected.
// Returns are kept in the outbox instead of being dropped.
func (m *Minion) send(msg *pb.MinionMessage) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sendCh == nil {
		if msg.GetRet() != nil {
			m.outbox = append(m.outbox, msg)
		}
		return false
	}
	select {
	case m.sendCh <- msg:
		return true
	default:
		if msg.GetRet() != nil {
			m.outbox = append(m.outbox, msg)
		}
		return false
	}
}

func (m *Minion) applyPushedConfig(cfg map[string]any) {
	if v, ok := cfg["mine_functions"]; ok && v != nil {
		pushed, err := mine.ParseFunctions(v)
		if err != nil {
			m.log.Warn("master-pushed mine_functions ignored", "err", err)
		} else {
			// The minion's own entries win over the master's.
			byName := map[string]mine.FuncSpec{}
			var order []string
			for _, s := range pushed {
				byName[s.Name] = s
				order = append(order, s.Name)
			}
			for _, s := range m.localMine {
				if _, ok := byName[s.Name]; !ok {
					order = append(order, s.Name)
				}
				byName[s.Name] = s
			}
			specs := make([]mine.FuncSpec, 0, len(order))
			for _, n := range order {
				specs = append(specs, byName[n])
			}
			m.mine.SetSpecs(specs)
		}
	}
}

// trackUnacked remembers a return until the master acknowledges it. A
// message that fails to send is then both in unacked and re-queued by the
// caller; the outbox merge at teardown keeps one copy per jid.
func (m *Minion) trackUnacked(msg *pb.MinionMessage) {
	if r := msg.GetRet(); r != nil {
		m.mu.Lock()
		m.unacked[r.GetJid()] = msg
		m.mu.Unlock()
	}
}

// Unacked is how many returns await the master's acknowledgement or a
// reconnect (for tests and status).
func (m *Minion) Unacked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.unacked) + len(m.outbox)
}

// watchLocalAddr ends the session when the address this connection was
// made from leaves the host's interfaces (an address change on eth0): the
// old TCP connection can only die by keepalive timeout, and until the
// minion reconnects from its new address, the mine update announcing that
// address cannot reach the master.
func (m *Minion) watchLocalAddr(ctx context.Context, local net.Addr, cancel context.CancelFunc) {
	ta, ok := local.(*net.TCPAddr)
	if !ok || ta.IP.IsLoopback() {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			continue
		}
		found := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ta.IP) {
				found = true
				break
			}
		}
		if !found {
			m.log.Info("local address of the master connection is gone; reconnecting", "addr", ta.IP.String())
			cancel()
			return
		}
	}
}
