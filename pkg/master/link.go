package master

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/brine-cm/brine/pkg/pki"
	"github.com/brine-cm/brine/pkg/registry"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// handshakeTimeout bounds how long an unauthenticated stream may wait for
// each handshake message on an idle master. Each other stream in its
// handshake at the time adds handshakeQueueShare, up to handshakeMaxWait:
// under a reconnect storm a minion's Hello and proof wait behind the
// master's own backlog, and a fixed 15 s timed out every one of them, so
// every minion retried and the storm never ended (brine-bench, 10,000
// minions at once).
const (
	handshakeTimeout    = 15 * time.Second
	handshakeQueueShare = 5 * time.Millisecond
	handshakeMaxWait    = 2 * time.Minute
)

// handshakeWait is how long the next handshake message may take with
// inFlight streams in their handshake.
func handshakeWait(inFlight int64) time.Duration {
	return min(handshakeTimeout+time.Duration(inFlight)*handshakeQueueShare, handshakeMaxWait)
}

// reservedTagPrefixes are tags only the master itself fires. A minion's
// event.send may not use them: otherwise any accepted minion could forge a
// webhook event and make the reactor deploy, or fake a job return.
var reservedTagPrefixes = []string{"salt/netapi/", "salt/auth", "key/", "job/", "minion/", "mine/", "reactor/", "hook/", "brine/"}

// sendQueueLen bounds what may wait for one minion's stream: a minion
// this far behind is not going to catch up.
const sendQueueLen = 256

// msgSender is the send half of a minion's stream.
type msgSender interface {
	Send(*pb.MasterMessage) error
}

type conn struct {
	id     string
	pub    ed25519.PublicKey
	ctx    context.Context
	cancel context.CancelFunc // drops the minion
	// release ends ctx once the stream is over (cancel, for an accepted
	// minion, also closes its connection).
	release context.CancelFunc
	// accepted is closed when a pending minion's key is accepted; only
	// pending connections have one.
	accepted chan struct{}

	mu          sync.Mutex
	outstanding map[string]struct{} // jids sent and not yet returned
	grains      map[string]any

	// An idle minion has no goroutine of its own beyond gRPC's: messages
	// wait in queue and a drain goroutine exists only while it is not
	// empty (docs/memory.md). A buffered channel with a sender goroutine
	// cost 2 KiB of buffer and a stack per idle minion.
	qmu      sync.Mutex
	stream   msgSender // nil until the Welcome is sent: nothing may precede it
	queue    []*pb.MasterMessage
	draining bool
}

// enqueue queues msg for the minion without blocking. false: the stream is
// closing or too far behind, and msg will not be sent.
func (c *conn) enqueue(msg *pb.MasterMessage) bool {
	if c.ctx.Err() != nil {
		return false
	}
	c.qmu.Lock()
	if len(c.queue) >= sendQueueLen {
		c.qmu.Unlock()
		return false
	}
	c.queue = append(c.queue, msg)
	start := c.stream != nil && !c.draining
	if start {
		c.draining = true
	}
	c.qmu.Unlock()
	if start {
		go c.drain()
	}
	return true
}

// startSending lets queued and future messages go out on s; the Welcome
// has been sent, and from here only the drain goroutine sends.
func (c *conn) startSending(s msgSender) {
	c.qmu.Lock()
	c.stream = s
	start := len(c.queue) > 0 && !c.draining
	if start {
		c.draining = true
	}
	c.qmu.Unlock()
	if start {
		go c.drain()
	}
}

// drain sends until the queue is empty, then ends. It is the only sender
// while it runs, as gRPC requires.
func (c *conn) drain() {
	for {
		c.qmu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 {
			c.draining = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		for _, msg := range batch {
			if err := c.stream.Send(msg); err != nil {
				c.qmu.Lock()
				c.draining = false
				c.queue = nil
				c.qmu.Unlock()
				// A stream that already ended (ctx done when its handler
				// returns) fails every send; its connection may carry the
				// minion's next stream by now and stays open.
				if c.ctx.Err() == nil {
					c.cancel()
				}
				return
			}
		}
	}
}

type linkServer struct {
	pb.UnimplementedMinionLinkServer
	m *Master
}

// Connect is the handler goroutine of a minion's stream, and for an
// accepted minion it stays parked in Recv for as long as the minion is
// connected, with its frames on that stack the whole time. The GC halves a
// stack only while it uses under a quarter of it (counting 800 bytes of
// guard): gRPC's frames from the handler down to Recv take 3.1 KiB, so
// every frame brine adds here decides between 16 and 8 KiB per idle
// minion (docs/memory.md). The work of opening the stream is therefore
// done in functions that have returned by then, and the receive loop is
// written out here rather than called.
func (s *linkServer) Connect(stream pb.MinionLink_ConnectServer) error {
	c, err := s.m.startStream(stream)
	if c == nil {
		return err
	}
	// No defer: its record would be one more thing on the parked frame.
	for {
		msg := new(pb.MinionMessage)
		if err := stream.RecvMsg(msg); err != nil {
			return s.m.closeStream(c, err)
		}
		s.m.handleMinionMessage(c, msg)
	}
}

// startStream takes a minion's stream from its handshake to where it
// receives: the conn it returns is live, welcomed and sending. A nil conn
// means the stream ends with err.
func (m *Master) startStream(stream pb.MinionLink_ConnectServer) (*conn, error) {
	ctx, cancel := context.WithCancel(stream.Context())
	c, interruptible, err := m.openStream(ctx, cancel, stream)
	if c == nil {
		cancel()
		return nil, err
	}
	c.release = cancel
	if err := m.welcome(stream, c); err != nil {
		return nil, m.closeStream(c, err)
	}
	c.startSending(stream)
	if !interruptible {
		return nil, m.closeStream(c, m.recvBeside(stream, c))
	}
	return c, nil
}

// openStream authenticates the minion and settles its key. It returns the
// accepted minion's conn, registered as live, or nil and why the stream
// ends (refused, or pending and over).
func (m *Master) openStream(ctx context.Context, cancel context.CancelFunc, stream pb.MinionLink_ConnectServer) (*conn, bool, error) {
	hello, exporter, err := m.handshake(ctx, stream)
	if err != nil {
		m.log.Warn("minion handshake failed", "peer", peerAddr(ctx), "err", err)
		return nil, false, err
	}
	id := hello.GetId()
	pub := ed25519.PublicKey(hello.GetPublicKey())
	_ = exporter

	st, err := m.admit(ctx, id, pub, m.cfg.AutoAccept || m.tokenOK(hello.GetAutosignToken()))
	if err != nil {
		return nil, false, err
	}
	m.publish("minion/"+id+"/auth", map[string]any{"id": id, "act": string(st), "pub_finger": pki.Fingerprint(pub)})
	c := &conn{
		id: id, pub: pub, ctx: ctx, cancel: cancel, outstanding: map[string]struct{}{},
		grains: wire.Map(hello.GetGrains()),
	}
	c.grains["id"] = id

	switch st {
	case pki.Rejected, pki.Denied:
		m.log.Warn("minion refused", "id", id, "key_state", st, "finger", pki.Fingerprint(pub))
		if st == pki.Denied {
			m.publish("key/"+id+"/denied", map[string]any{"id": id, "pub_finger": pki.Fingerprint(pub)})
		}
		m.refuse(ctx, "key_"+string(st), id, "key "+string(st))
		stream.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Welcome{Welcome: &pb.Welcome{KeyState: string(st), Message: "key " + string(st)}}})
		return nil, false, status.Errorf(codes.PermissionDenied, "minion %s: key %s", id, st)
	case pki.Pending:
		c.accepted = make(chan struct{})
		return nil, false, m.waitAccepted(ctx, stream, c)
	case pki.Accepted:
	default:
		return nil, false, status.Errorf(codes.Internal, "minion %s: unknown key state %q", id, st)
	}
	var gate *pki.ConnGate
	if p, ok := peer.FromContext(ctx); ok {
		if g, ok := p.AuthInfo.(pki.GatedAuthInfo); ok {
			gate = g.Gate
		}
	}
	if gate != nil {
		// Only now may this connection send more than a handshake's worth.
		gate.Open()
		// The stream's Recv runs in the handler goroutine and nothing but
		// the connection ending interrupts it: dropping the minion (key
		// deleted, a newer stream, shutdown, a failed send) closes it.
		c.cancel = func() {
			cancel()
			gate.Close()
		}
	}
	m.registerStream(c)
	return c, gate != nil, nil
}

// handshake reads Hello, sends a fresh nonce and checks the minion's
// signature over it, bound to this TLS connection.
func (m *Master) handshake(ctx context.Context, stream pb.MinionLink_ConnectServer) (*pb.Hello, []byte, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, nil, status.Error(codes.Unauthenticated, "no peer")
	}
	var ti credentials.TLSInfo
	switch ai := p.AuthInfo.(type) {
	case credentials.TLSInfo:
		ti = ai
	case pki.GatedAuthInfo:
		ti = ai.TLSInfo
	default:
		return nil, nil, status.Error(codes.Unauthenticated, "not a TLS connection")
	}
	exporter, err := pki.Exporter(&ti.State)
	if err != nil {
		return nil, nil, status.Error(codes.Unauthenticated, err.Error())
	}
	m.handshakes.Add(1)
	defer m.handshakes.Add(-1)
	type recvd struct {
		msg *pb.MinionMessage
		err error
	}
	recv := func() (*pb.MinionMessage, error) {
		ch := make(chan recvd, 1)
		go func() { msg, err := stream.Recv(); ch <- recvd{msg, err} }()
		wait := handshakeWait(m.handshakes.Load() - 1)
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case r := <-ch:
			return r.msg, r.err
		case <-t.C:
			// The caller's return ends the stream, which ends the Recv.
			return nil, status.Errorf(codes.DeadlineExceeded, "handshake timed out after %s", wait.Round(time.Millisecond))
		}
	}
	msg, err := recv()
	if err != nil {
		return nil, nil, err
	}
	hello := msg.GetHello()
	if hello == nil {
		m.refuse(ctx, "no_hello", "", fmt.Sprintf("%T before authenticating", msg.GetMsg()))
		return nil, nil, status.Error(codes.Unauthenticated, "first message must be hello: nothing is accepted before a minion authenticates")
	}
	if err := pki.ValidateID(hello.GetId()); err != nil {
		m.refuse(ctx, "bad_id", "", err.Error())
		return nil, nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if len(hello.GetPublicKey()) != ed25519.PublicKeySize {
		return nil, nil, status.Errorf(codes.InvalidArgument, "minion %s: public key must be %d bytes of Ed25519", hello.GetId(), ed25519.PublicKeySize)
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	if err := stream.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Challenge{Challenge: &pb.Challenge{Nonce: nonce}}}); err != nil {
		return nil, nil, err
	}
	msg, err = recv()
	if err != nil {
		return nil, nil, err
	}
	proof := msg.GetProof()
	if proof == nil || !pki.VerifyProof(hello.GetPublicKey(), hello.GetId(), nonce, exporter, proof.GetSignature()) {
		m.refuse(ctx, "bad_proof", hello.GetId(), "no valid proof of key possession")
		return nil, nil, status.Errorf(codes.Unauthenticated, "minion %s: bad proof of key possession", hello.GetId())
	}
	return hello, exporter, nil
}

// waitAccepted parks a pending minion until an operator accepts its key. It
// may send nothing and is sent nothing meanwhile.
func (m *Master) waitAccepted(ctx context.Context, stream pb.MinionLink_ConnectServer, c *conn) error {
	m.mu.Lock()
	if old := m.pending[c.id]; old != nil {
		old.cancel()
	}
	m.pending[c.id] = c
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.pending[c.id] == c {
			delete(m.pending, c.id)
		}
		m.mu.Unlock()
	}()
	m.log.Info("minion key pending", "id", c.id, "finger", pki.Fingerprint(c.pub))
	m.publish("key/"+c.id+"/pending", map[string]any{"id": c.id, "pub_finger": pki.Fingerprint(c.pub)})
	if err := stream.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Welcome{Welcome: &pb.Welcome{KeyState: string(pki.Pending), Message: "key pending acceptance"}}}); err != nil {
		return err
	}
	// A pending minion may send nothing: brine's own minion does not, so
	// anything that arrives is someone probing what an unreviewed key can
	// do. The stream ends; the key stays pending for the operator.
	gone := make(chan error, 1)
	go func() {
		msg, err := stream.Recv()
		if err == nil {
			m.refuse(ctx, "pending_sent", c.id, fmt.Sprintf("%T while the key is pending", msg.GetMsg()))
			err = status.Errorf(codes.PermissionDenied, "minion %s: key pending: nothing is accepted until an operator accepts it", c.id)
		}
		gone <- err
	}()
	select {
	case <-c.accepted:
		// Restarting the connection is simpler than promoting this one in
		// place: the minion reconnects at once and is admitted as accepted.
		stream.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Welcome{Welcome: &pb.Welcome{KeyState: string(pki.Accepted), Message: "key accepted; reconnect"}}})
		return nil
	case err := <-gone:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// After a connect storm the master's heap holds the storm's garbage as
// free pages: Go's scavenger returns them over minutes and keeps about a
// tenth of the heap goal, which at 1,000 minions measured 10-25 KiB of RSS
// per minion for as long (docs/memory.md). Once stormQuiet passes without
// a new stream after at least stormMinStreams, the master returns them at
// once: one GC, never per minion.
const (
	stormQuiet      = 5 * time.Second
	stormMinStreams = 100
)

type stormTrim struct {
	mu      sync.Mutex
	timer   *time.Timer
	streams int
	// Tests set these; zero values are stormQuiet, stormMinStreams and
	// debug.FreeOSMemory.
	quietFor   time.Duration
	minStreams int
	free       func()
}

// streamOpened counts an accepted stream and (re)arms the trim.
func (t *stormTrim) streamOpened() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams++
	d := t.quietFor
	if d <= 0 {
		d = stormQuiet
	}
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.quiet)
		return
	}
	t.timer.Reset(d)
}

func (t *stormTrim) quiet() {
	t.mu.Lock()
	n, min := t.streams, t.minStreams
	if min <= 0 {
		min = stormMinStreams
	}
	if n >= min {
		t.streams = 0
	}
	free := t.free
	t.mu.Unlock()
	if n < min {
		return // a few reconnects: not worth a GC
	}
	if free == nil {
		free = debug.FreeOSMemory
	}
	free()
}

// registerStream makes c the minion's live stream and records it as
// connected.
func (m *Master) registerStream(c *conn) {
	m.trim.streamOpened()
	m.mu.Lock()
	if old := m.conns[c.id]; old != nil {
		// The same key proved itself again: the older stream is a dead
		// connection the keepalive has not noticed yet.
		old.cancel()
	}
	m.conns[c.id] = c
	m.mu.Unlock()
	now := time.Now().UTC()
	if err := m.reg.Upsert(registry.Minion{ID: c.id, Grains: c.grains, Connected: true, LastSeen: now, ConnectedAt: now}); err != nil {
		m.log.Error("registry", "id", c.id, "err", err)
	}
	m.saveGrains(c.id, c.grains)
	// From here the stream reads the registry's copy, whose strings and
	// repeated values are shared across minions: keeping the decoded Hello
	// copy too doubled the grains' cost per minion (docs/BENCHMARKS.md).
	// Swapped before clusterConnected, whose goroutine reads c.grains.
	if g, ok := m.reg.Grains(c.id); ok {
		c.mu.Lock()
		c.grains = g
		c.mu.Unlock()
	}
	m.clusterConnected(c, now)
}

// closeStream records the minion gone, unless a newer stream replaced c,
// and ends c.ctx. It returns what the handler returns for err: nil when
// the master dropped the minion rather than the stream failing.
func (m *Master) closeStream(c *conn, err error) error {
	if c.ctx.Err() != nil {
		err = nil
	}
	defer c.release()
	m.mu.Lock()
	current := m.conns[c.id] == c
	if current {
		delete(m.conns, c.id)
	}
	m.mu.Unlock()
	if current {
		m.reg.SetConnected(c.id, false, time.Now().UTC())
		m.clusterDisconnected(c, time.Now().UTC())
		m.publish("minion/"+c.id+"/disconnect", map[string]any{"id": c.id})
		m.log.Info("minion disconnected", "id", c.id)
	}
	return err
}

// welcome sends the accepted minion its Welcome, the first message of
// the stream after the handshake.
func (m *Master) welcome(stream pb.MinionLink_ConnectServer, c *conn) error {
	welcome := &pb.Welcome{KeyState: string(pki.Accepted), Message: "welcome"}
	if cfg := m.minionConfigPush(); cfg != nil {
		welcome.Config = cfg
	}
	if err := stream.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Welcome{Welcome: welcome}}); err != nil {
		return err
	}
	m.log.Info("minion connected", "id", c.id, "peer", peerAddr(stream.Context()))
	m.publish("minion/"+c.id+"/start", map[string]any{"id": c.id})
	return nil
}

// recvBeside serves a stream whose connection cannot be closed from here
// (never the case on Start's gated minion port): Recv runs beside this
// goroutine, which returns when the minion is dropped.
func (m *Master) recvBeside(stream pb.MinionLink_ConnectServer, c *conn) error {
	recvErr := make(chan error, 1)
	go func() { recvErr <- m.recvLoop(stream, c) }()
	select {
	case err := <-recvErr:
		return err
	case <-c.ctx.Done():
		return nil
	}
}

// recvLoop handles the minion's messages in order until its stream ends
// (recvBeside's copy of Connect's loop).
func (m *Master) recvLoop(stream pb.MinionLink_ConnectServer, c *conn) error {
	for {
		msg := new(pb.MinionMessage)
		err := stream.RecvMsg(msg) // Recv's frame too would stay on the stack
		if err != nil {
			// Returning ends the RPC (serveMinion's cancel ends c.ctx);
			// the connection stays for gRPC to report the status on.
			return err
		}
		m.handleMinionMessage(c, msg)
	}
}

func (m *Master) handleMinionMessage(c *conn, msg *pb.MinionMessage) {
	// Whatever one minion sends, the master stays up for the others: a bug
	// reachable from minion input costs that message, not the process.
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic handling a minion message; message dropped", "id", c.id, "panic", r)
		}
	}()
	switch x := msg.Msg.(type) {
	case *pb.MinionMessage_Ret:
		m.handleReturn(c, x.Ret)
	case *pb.MinionMessage_Event:
		tag := x.Event.GetTag()
		if tag == "" || reserved(tag) {
			m.refuse(c.ctx, "reserved_tag", c.id, fmt.Sprintf("event tag %q is reserved for the master", tag))
			return
		}
		data := wire.Map(x.Event.GetData())
		if claimed, ok := data["id"]; ok && claimed != c.id {
			m.refuse(c.ctx, "forged_id", c.id, fmt.Sprintf("event %q claims id %v", tag, claimed))
			return
		}
		data["id"] = c.id // who sent it is the authenticated id, not a claim
		m.publishFromMinion(c.ctx, tag, data)
	case *pb.MinionMessage_Mine:
		m.handleMineUpdate(c, x.Mine)
	case *pb.MinionMessage_Call:
		go m.handleMinionCall(c, x.Call)
	case *pb.MinionMessage_Pong:
	default:
		m.log.Warn("unexpected message from minion", "id", c.id)
	}
}

// waitPublisher is a bus that can slow a producer down instead of
// dropping its events for a subscriber that is momentarily behind
// (event.Local).
type waitPublisher interface {
	PublishWait(ctx context.Context, tag string, data map[string]any, wait time.Duration) error
}

// minionEventWait bounds how long one minion's stream waits for a full
// subscriber. Meanwhile gRPC flow control holds the minion back; its
// event.send fails visibly once its own queue is full.
const minionEventWait = 500 * time.Millisecond

// publishFromMinion puts a minion's event on the bus. A burst faster than
// a subscriber (brinectl events, an API consumer) reads is back-pressured
// rather than lost: brine-bench counted 72% of 200,000 events dropped at
// the control-socket subscriber before (docs/BENCHMARKS.md).
func (m *Master) publishFromMinion(ctx context.Context, tag string, data map[string]any) {
	wp, ok := m.bus.(waitPublisher)
	if !ok {
		m.publish(tag, data)
		return
	}
	if err := wp.PublishWait(ctx, tag, data, minionEventWait); err != nil {
		m.log.Warn("event publish failed", "tag", tag, "err", err)
	}
}

func reserved(tag string) bool {
	for _, p := range reservedTagPrefixes {
		if strings.HasPrefix(tag, p) {
			return true
		}
	}
	return false
}

func (m *Master) handleMinionCall(c *conn, call *pb.MasterCall) {
	reply := &pb.MasterCallReply{CallId: call.GetCallId()}
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in a master function called by a minion", "id", c.id, "fun", call.GetFun(), "panic", r)
			c.enqueue(&pb.MasterMessage{Msg: &pb.MasterMessage_CallReply{CallReply: &pb.MasterCallReply{CallId: call.GetCallId(), Error: "internal error"}}})
		}
	}()
	fn, ok := m.minionCalls[call.GetFun()]
	if !ok {
		reply.Error = fmt.Sprintf("master function %q is not available to minions", call.GetFun())
	} else {
		ret, err := fn(c.ctx, c.id, wire.Args(call.GetArgs()), wire.Map(call.GetKwargs()))
		if err != nil {
			reply.Error = err.Error()
		} else if v, err := wire.Value(ret); err != nil {
			reply.Error = err.Error()
		} else {
			reply.Ret = v
		}
	}
	c.enqueue(&pb.MasterMessage{Msg: &pb.MasterMessage_CallReply{CallReply: reply}})
}

// disconnect drops a minion's live or pending stream (key rejected/deleted).
func (m *Master) disconnect(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conns[id]; c != nil {
		c.cancel()
	}
	if c := m.pending[id]; c != nil {
		c.cancel()
	}
}

// acceptPending tells a parked minion its key is now accepted.
func (m *Master) acceptPending(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.pending[id]; c != nil {
		select {
		case <-c.accepted:
		default:
			close(c.accepted)
		}
	}
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// Grains of every minion seen are kept on disk so that after a master
// restart grain targeting still knows offline minions.
func (m *Master) grainsPath(id string) string {
	return filepath.Join(m.cfg.DataDir, "grains", id+".json")
}

func (m *Master) saveGrains(id string, grains map[string]any) {
	b, err := json.Marshal(grains)
	if err == nil {
		// A reconnect usually brings the grains the cache already holds
		// (json.Marshal sorts map keys, so equal grains are equal bytes):
		// reading them is far cheaper than the write, fsync and rename,
		// which were ~9% of the master's CPU in a 10,000-minion storm.
		if old, rerr := os.ReadFile(m.grainsPath(id)); rerr == nil && bytes.Equal(old, b) {
			return
		}
		err = pki.WriteFileAtomic(m.grainsPath(id), b, 0o600)
	}
	if err != nil {
		m.log.Warn("grains cache", "id", id, "err", err)
	}
}

func (m *Master) deleteGrains(id string) { os.Remove(m.grainsPath(id)) }

func (m *Master) loadGrainsCache() map[string]map[string]any {
	out := map[string]map[string]any{}
	entries, err := os.ReadDir(filepath.Join(m.cfg.DataDir, "grains"))
	if err != nil {
		return out
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || pki.ValidateID(id) != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.cfg.DataDir, "grains", e.Name()))
		if err != nil {
			continue
		}
		var g map[string]any
		if json.Unmarshal(b, &g) == nil {
			out[id] = g
		}
	}
	return out
}

// admit records a connecting minion's key, refusing a new id once
// max_pending_keys keys wait for review: every pending key is a file and
// an entry an operator must read, so an unauthenticated flood of fresh
// keys would otherwise fill both.
func (m *Master) admit(ctx context.Context, id string, pub ed25519.PublicKey, autoAccept bool) (pki.KeyState, error) {
	known, err := m.keys.Lookup(ctx, id)
	if err != nil {
		return "", status.Errorf(codes.Internal, "key store: %v", err)
	}
	// A denied record alone (an impostor's key kept as evidence) does not
	// make an id known: Admit would record a new pending key for it.
	held := false
	for _, k := range known {
		held = held || k.State != pki.Denied
	}
	if held || autoAccept {
		st, err := m.keys.Admit(ctx, id, pub, autoAccept)
		if err != nil {
			return "", status.Errorf(codes.Internal, "key store: %v", err)
		}
		return st, nil
	}
	limit := m.cfg.MaxPendingKeys
	if limit <= 0 {
		limit = defaultMaxPendingKeys
	}
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	n, err := m.countKeys(ctx, pki.Pending)
	if err != nil {
		return "", status.Errorf(codes.Internal, "key store: %v", err)
	}
	if n >= limit {
		m.refuse(ctx, "pending_cap", id, fmt.Sprintf("%d keys already pending (max_pending_keys)", n))
		return "", status.Errorf(codes.ResourceExhausted, "minion %s: %d keys already wait for review (max_pending_keys); key not recorded", id, n)
	}
	st, err := m.keys.Admit(ctx, id, pub, false)
	if err != nil {
		return "", status.Errorf(codes.Internal, "key store: %v", err)
	}
	return st, nil
}

const defaultMaxPendingKeys = 1000

// keyCounter is the cheap count a key store may offer (FileKeyStore does).
type keyCounter interface {
	Count(ctx context.Context, st pki.KeyState) (int, error)
}

func (m *Master) countKeys(ctx context.Context, st pki.KeyState) (int, error) {
	if kc, ok := m.keys.(keyCounter); ok {
		return kc.Count(ctx, st)
	}
	keys, err := m.keys.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if k.State == st {
			n++
		}
	}
	return n, nil
}

// auditPerSecond bounds audit events per reason: a flood is counted in
// full by the metric, but must not become a flood on the bus as well.
const auditPerSecond = 20

// auditLimiter allows auditPerSecond events per reason per second.
type auditLimiter struct {
	mu     sync.Mutex
	second int64
	n      map[string]int
}

func (a *auditLimiter) allow(reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now().Unix()
	if now != a.second || a.n == nil {
		a.second, a.n = now, map[string]int{}
	}
	a.n[reason]++
	return a.n[reason] <= auditPerSecond
}

// refuse records something the minion port turned away: a log line, the
// brine_minion_refused_total counter and an audit event on
// brine/audit/minion/<reason> (a reserved prefix, so no minion can fake
// one). id is the authenticated id when there is one, else the claim.
func (m *Master) refuse(ctx context.Context, reason, id, detail string) {
	m.metrics.refused.WithLabelValues(reason).Inc()
	peerA := peerAddr(ctx)
	m.log.Warn("minion port refused", "reason", reason, "id", id, "peer", peerA, "detail", detail)
	if m.audit.allow(reason) {
		m.publish("brine/audit/minion/"+reason, map[string]any{"reason": reason, "id": id, "peer": peerA, "detail": detail})
	}
}
