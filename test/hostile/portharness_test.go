package hostile

// The harness of the minion-port and process attacks: a real brine-master
// process, real brine-minion processes, and a raw minion-port client that
// speaks the wire protocol message by message so a test can send what no
// honest minion would.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/pki"
	pb "github.com/brine-cm/brine/proto/brinev1"
	"github.com/brine-cm/brine/test/binaries"
)

// portMaster is a running brine-master process.
type portMaster struct {
	t       testing.TB
	bin     string
	root    string // the test's whole directory: nothing may appear outside data dirs
	dataDir string
	addr    string // minion port
	metrics string // host:port of /metrics
	socket  string
	pid     int
	ctl     binaries.Ctl
	control pb.ControlClient
}

// startPortMaster runs brine-master with extra YAML appended to its config.
func startPortMaster(t testing.TB, extra string) *portMaster {
	t.Helper()
	bin := binaries.Build(t)
	root := t.TempDir()
	pm := &portMaster{t: t, bin: bin, root: root, dataDir: filepath.Join(root, "srv", "brine", "master")}
	port := binaries.FreePort(t)
	pm.addr = fmt.Sprintf("127.0.0.1:%d", port)
	pm.metrics = fmt.Sprintf("127.0.0.1:%d", binaries.FreePort(t))
	pm.socket = filepath.Join(pm.dataDir, "control.sock")
	cfg := fmt.Sprintf("interface: 127.0.0.1\nport: %d\ndata_dir: %s\nmetrics_listen: %s\nlog_level: warning\n%s", port, pm.dataDir, pm.metrics, extra)
	cfgPath := filepath.Join(root, "master.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := binaries.Start(t, filepath.Join(root, "master.log"), filepath.Join(bin, "brine-master"), "--config", cfgPath)
	pm.pid = cmd.Process.Pid
	binaries.Eventually(t, "control socket and metrics", 15*time.Second, func() bool {
		if _, err := os.Stat(pm.socket); err != nil {
			return false
		}
		r, err := http.Get("http://" + pm.metrics + "/metrics")
		if err != nil {
			return false
		}
		r.Body.Close()
		return true
	})
	pm.ctl = binaries.Ctl{T: t, Bin: filepath.Join(bin, "brinectl"), Socket: pm.socket}
	cc, err := grpc.NewClient("unix://"+pm.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	pm.control = pb.NewControlClient(cc)
	return pm
}

// startMinion runs a real brine-minion against the master.
func (pm *portMaster) startMinion(id string, args ...string) {
	pm.t.Helper()
	dir := filepath.Join(pm.root, "minions", id)
	all := append([]string{"--config", "/dev/null", "--id", id, "--master", pm.addr, "--data-dir", dir,
		"--hosts-file", filepath.Join(dir, "hosts"), "--log-level", "warning"}, args...)
	binaries.Start(pm.t, filepath.Join(pm.root, id+".log"), filepath.Join(pm.bin, "brine-minion"), all...)
}

// acceptMinions accepts the pending keys of ids and waits until all are
// connected.
func (pm *portMaster) acceptMinions(ids ...string) {
	pm.t.Helper()
	for _, id := range ids {
		binaries.Eventually(pm.t, "pending key of "+id, 20*time.Second, func() bool {
			out, code := pm.ctl.Run("key", "accept", id)
			return code == 0 && !strings.Contains(out, "no ")
		})
	}
	binaries.Eventually(pm.t, fmt.Sprintf("%v connected", ids), 30*time.Second, func() bool {
		got := map[string]bool{}
		for _, id := range pm.ctl.Connected() {
			got[id] = true
		}
		for _, id := range ids {
			if !got[id] {
				return false
			}
		}
		return true
	})
}

// metric reads one sample from /metrics; labels like `reason="forged_id"`.
func (pm *portMaster) metric(name, labels string) float64 {
	pm.t.Helper()
	r, err := http.Get("http://" + pm.metrics + "/metrics")
	if err != nil {
		pm.t.Fatalf("metrics: %v", err)
	}
	defer r.Body.Close()
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, want+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				pm.t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// events collects bus events matching glob from now on.
type eventLog struct {
	mu  sync.Mutex
	evs []*pb.Event
}

func (pm *portMaster) watch(glob string) *eventLog {
	pm.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pm.t.Cleanup(cancel)
	st, err := pm.control.Events(ctx, &pb.EventsRequest{TagGlob: glob})
	if err != nil {
		pm.t.Fatal(err)
	}
	el := &eventLog{}
	ready := make(chan struct{})
	go func() {
		close(ready)
		for {
			ev, err := st.Recv()
			if err != nil {
				return
			}
			el.mu.Lock()
			el.evs = append(el.evs, ev)
			el.mu.Unlock()
		}
	}()
	<-ready
	// The subscription is live once the server has the stream; a marker
	// event is not available from outside, so give it a moment.
	time.Sleep(300 * time.Millisecond)
	return el
}

func (el *eventLog) tags() []string {
	el.mu.Lock()
	defer el.mu.Unlock()
	var out []string
	for _, e := range el.evs {
		out = append(out, e.GetTag())
	}
	return out
}

func (el *eventLog) find(tag string) []*pb.Event {
	el.mu.Lock()
	defer el.mu.Unlock()
	var out []*pb.Event
	for _, e := range el.evs {
		if e.GetTag() == tag {
			out = append(out, e)
		}
	}
	return out
}

// publish runs a job through the control socket and returns its returns.
func (pm *portMaster) publish(target, tgtType, fun string, args []any, timeout time.Duration) (string, map[string]*pb.Return) {
	pm.t.Helper()
	lv, err := structpb.NewList(args)
	if err != nil {
		pm.t.Fatal(err)
	}
	st, err := pm.control.Publish(context.Background(), &pb.PublishRequest{Target: target, TgtType: tgtType, Fun: fun, Args: lv, TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		pm.t.Fatal(err)
	}
	jid := ""
	rets := map[string]*pb.Return{}
	for {
		ev, err := st.Recv()
		if err != nil {
			break
		}
		switch x := ev.Ev.(type) {
		case *pb.PublishEvent_Started:
			jid = x.Started.GetJid()
		case *pb.PublishEvent_Ret:
			rets[x.Ret.GetId()] = x.Ret
		}
	}
	return jid, rets
}

// runner calls a master runner over the control socket.
func (pm *portMaster) runner(fun string, args ...any) (any, error) {
	pm.t.Helper()
	lv, err := structpb.NewList(args)
	if err != nil {
		pm.t.Fatal(err)
	}
	r, err := pm.control.Runner(context.Background(), &pb.RunnerRequest{Fun: fun, Args: lv})
	if err != nil {
		return nil, err
	}
	return r.GetRet().AsInterface(), nil
}

// jobReturns reads a job's recorded returns from the job cache.
func (pm *portMaster) jobReturns(jid string) map[string]any {
	pm.t.Helper()
	v, err := pm.runner("job.show", jid)
	if err != nil {
		pm.t.Fatalf("job.show %s: %v", jid, err)
	}
	r, _ := v.(map[string]any)["returns"].(map[string]any)
	return r
}

// keys is key.list: state -> ids.
func (pm *portMaster) keys() map[string][]string {
	pm.t.Helper()
	v, err := pm.runner("key.list")
	if err != nil {
		pm.t.Fatalf("key.list: %v", err)
	}
	out := map[string][]string{}
	for st, ids := range v.(map[string]any) {
		l, _ := ids.([]any)
		for _, id := range l {
			out[st] = append(out[st], fmt.Sprint(id))
		}
	}
	return out
}

// rawClient is a TLS connection to the minion port that the test drives
// message by message.
type rawClient struct {
	t     testing.TB
	cc    *grpc.ClientConn
	creds *stateCreds
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	creds := &stateCreds{TransportCredentials: credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &rawClient{t: t, cc: cc, creds: creds}
}

// identity is a minion key pair.
type identity struct {
	id   string
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newIdentity(id string) identity {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return identity{id: id, pub: pub, priv: priv}
}

// handshake opens a Connect stream and authenticates: hello claims
// (helloID, helloPub); the proof is signed with signer. It returns the
// stream and the first Welcome, or the error that ended the stream.
func (rc *rawClient) handshake(ctx context.Context, helloID string, helloPub ed25519.PublicKey, signer ed25519.PrivateKey) (pb.MinionLink_ConnectClient, *pb.Welcome, error) {
	st, err := pb.NewMinionLinkClient(rc.cc).Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Hello{Hello: &pb.Hello{Id: helloID, PublicKey: helloPub, Version: "hostile"}}}); err != nil {
		return st, nil, err
	}
	msg, err := st.Recv()
	if err != nil {
		return st, nil, err
	}
	nonce := msg.GetChallenge().GetNonce()
	exporter, err := pki.Exporter(rc.creds.get())
	if err != nil {
		rc.t.Fatal(err)
	}
	sig := ed25519.Sign(signer, pki.AuthTranscript(helloID, nonce, exporter))
	if err := st.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Proof{Proof: &pb.Proof{Signature: sig}}}); err != nil {
		return st, nil, err
	}
	msg, err = st.Recv()
	if err != nil {
		return st, nil, err
	}
	return st, msg.GetWelcome(), nil
}

// rawSession is an accepted raw minion: jobs it is sent and the acks of
// its returns arrive on channels.
type rawSession struct {
	st      pb.MinionLink_ConnectClient
	jobs    chan *pb.Job
	acks    chan string
	replies chan *pb.MasterCallReply
	done    chan error
}

// acceptedRaw enrols me as a minion (pending, accepted by the operator)
// and returns its live accepted session.
func (pm *portMaster) acceptedRaw(me identity) *rawSession {
	pm.t.Helper()
	rc := dialRaw(pm.t, pm.addr)
	ctx, cancel := context.WithCancel(context.Background())
	pm.t.Cleanup(cancel)
	st, w, err := rc.handshake(ctx, me.id, me.pub, me.priv)
	if err != nil || w.GetKeyState() != "pending" {
		pm.t.Fatalf("raw minion %s: welcome %v, err %v", me.id, w, err)
	}
	if out, code := pm.ctl.Run("key", "accept", me.id); code != 0 {
		pm.t.Fatalf("key accept %s: %s", me.id, out)
	}
	if msg, err := st.Recv(); err != nil || msg.GetWelcome().GetKeyState() != "accepted" {
		pm.t.Fatalf("raw minion %s: expected the accepted welcome, got %v %v", me.id, msg, err)
	}
	st, w, err = rc.handshake(ctx, me.id, me.pub, me.priv)
	if err != nil || w.GetKeyState() != "accepted" {
		pm.t.Fatalf("raw minion %s: reconnect welcome %v, err %v", me.id, w, err)
	}
	s := &rawSession{st: st, jobs: make(chan *pb.Job, 64), acks: make(chan string, 64), replies: make(chan *pb.MasterCallReply, 256), done: make(chan error, 1)}
	go func() {
		for {
			msg, err := st.Recv()
			if err != nil {
				s.done <- err
				return
			}
			switch x := msg.Msg.(type) {
			case *pb.MasterMessage_Job:
				s.jobs <- x.Job
			case *pb.MasterMessage_Ack:
				s.acks <- x.Ack.GetJid()
			case *pb.MasterMessage_CallReply:
				s.replies <- x.CallReply
			}
		}
	}()
	return s
}

func (s *rawSession) send(t testing.TB, msg *pb.MinionMessage) {
	t.Helper()
	if err := s.st.Send(msg); err != nil {
		t.Fatalf("send %T: %v", msg.GetMsg(), err)
	}
}

func (s *rawSession) nextJob(t testing.TB) *pb.Job {
	t.Helper()
	select {
	case j := <-s.jobs:
		return j
	case <-time.After(15 * time.Second):
		t.Fatal("raw minion: no job arrived")
		return nil
	}
}

func (s *rawSession) waitAck(t testing.TB, jid string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case got := <-s.acks:
			if got == jid {
				return
			}
		case <-deadline:
			t.Fatalf("raw minion: no ack for %s", jid)
		}
	}
}

// stateCreds remembers the TLS state of the connection, for the exporter.
type stateCreds struct {
	credentials.TransportCredentials
	mu sync.Mutex
	st *tls.ConnectionState
}

func (c *stateCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ai, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil {
		if ti, ok := ai.(credentials.TLSInfo); ok {
			st := ti.State
			c.mu.Lock()
			c.st = &st
			c.mu.Unlock()
		}
	}
	return conn, ai, err
}

func (c *stateCreds) Clone() credentials.TransportCredentials { return c }

func (c *stateCreds) get() *tls.ConnectionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// rawBytes is a message the rawCodec sends as is: the only way to put
// bytes that are not valid protobuf (invalid UTF-8 in a string) on the wire.
type rawBytes []byte

// rawCodec marshals rawBytes verbatim and everything else as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(rawBytes); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (rawCodec) Name() string                    { return "proto" }

// codeOf is the gRPC code of err (codes.OK for nil).
func codeOf(err error) codes.Code { return status.Code(err) }

// procStatus reads a field (VmRSS, VmHWM) of /proc/<pid>/status in KiB.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// publishQuiet is publish for goroutines other than the test's: failures
// show as missing returns instead of ending the test.
func (pm *portMaster) publishQuiet(target, fun string, timeout time.Duration) (string, map[string]*pb.Return) {
	st, err := pm.control.Publish(context.Background(), &pb.PublishRequest{Target: target, Fun: fun, TimeoutMs: timeout.Milliseconds()})
	rets := map[string]*pb.Return{}
	if err != nil {
		return "", rets
	}
	jid := ""
	for {
		ev, err := st.Recv()
		if err != nil {
			return jid, rets
		}
		switch x := ev.Ev.(type) {
		case *pb.PublishEvent_Started:
			jid = x.Started.GetJid()
		case *pb.PublishEvent_Ret:
			rets[x.Ret.GetId()] = x.Ret
		}
	}
}
