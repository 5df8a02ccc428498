package hostile

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/pki"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
	"github.com/brine-cm/brine/test/binaries"
)

// contentFleet is a real brine-master and real brine-minions (processes),
// with a state tree, pillar tree and config written into a temp dir. It
// serves the tests of what flows through brine: files, templates,
// webhook payloads.
type contentFleet struct {
	t        *testing.T
	dir      string
	bin      string
	ctl      binaries.Ctl
	port     int
	hookPort int
}

// startContentFleet writes files (paths relative to the fleet dir; "@DIR@"
// in names and content becomes the dir, "@HOOKPORT@" the webhook port),
// starts a master with auto_accept, file_roots dir/states, pillar_roots
// dir/pillar and masterExtra appended to its config, then the minions
// (id -> extra flags such as --grain) and waits until all are connected.
func startContentFleet(t *testing.T, files map[string]string, masterExtra string, minions map[string][]string) *contentFleet {
	t.Helper()
	bin := binaries.Build(t)
	dir := t.TempDir()
	f := &contentFleet{t: t, dir: dir, bin: bin, port: binaries.FreePort(t), hookPort: binaries.FreePort(t)}
	f.ctl = binaries.Ctl{T: t, Bin: filepath.Join(bin, "brinectl"), Socket: filepath.Join(dir, "master", "control.sock")}
	for _, d := range []string{"master", "states", "pillar", "out"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	for name, text := range files {
		f.write(name, text)
	}
	cfg := fmt.Sprintf("interface: 127.0.0.1\nport: %d\ndata_dir: %s\nauto_accept: true\nfile_roots: {base: [%s]}\npillar_roots: {base: [%s]}\n%s",
		f.port, filepath.Join(dir, "master"), filepath.Join(dir, "states"), filepath.Join(dir, "pillar"), f.expand(masterExtra))
	f.write("master.yaml", cfg)
	binaries.Start(t, filepath.Join(dir, "master.log"), filepath.Join(bin, "brine-master"), "--config", filepath.Join(dir, "master.yaml"))
	binaries.Eventually(t, "control socket", 15*time.Second, func() bool { _, err := os.Stat(f.ctl.Socket); return err == nil })
	var ids []string
	for id, extra := range minions {
		ids = append(ids, id)
		os.MkdirAll(filepath.Join(dir, id), 0o700)
		os.WriteFile(filepath.Join(dir, id, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
		args := append([]string{"--config", "/dev/null", "--id", id, "--master", fmt.Sprintf("127.0.0.1:%d", f.port),
			"--data-dir", filepath.Join(dir, id), "--hosts-file", filepath.Join(dir, id, "hosts")}, extra...)
		binaries.Start(t, filepath.Join(dir, id+".log"), filepath.Join(bin, "brine-minion"), args...)
	}
	slices.Sort(ids)
	binaries.Eventually(t, "minions connected", 30*time.Second, func() bool { return slices.Equal(f.ctl.Connected(), ids) })
	return f
}

func (f *contentFleet) expand(s string) string {
	return strings.NewReplacer("@DIR@", f.dir, "@HOOKPORT@", fmt.Sprint(f.hookPort)).Replace(s)
}

func (f *contentFleet) path(name string) string { return filepath.Join(f.dir, f.expand(name)) }

func (f *contentFleet) write(name, text string) {
	f.t.Helper()
	p := f.path(name)
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, []byte(f.expand(text)), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// waitFile waits for a file to appear and returns its content.
func (f *contentFleet) waitFile(name string, d time.Duration) (string, bool) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(f.path(name)); err == nil {
			return string(b), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", false
}

// rawMinion is an attacker holding an accepted key of its own: it speaks
// the minion protocol directly, so it can send what a real minion never
// would (other ids in fields, arbitrary master calls).
type rawMinion struct {
	stream pb.MinionLink_ConnectClient
	cc     *grpc.ClientConn
	mu     sync.Mutex
}

// tlsCapture keeps the TLS state of the connection, whose exporter the
// proof of key possession is bound to.
type tlsCapture struct {
	credentials.TransportCredentials
	mu    sync.Mutex
	state *tls.ConnectionState
}

func (c *tlsCapture) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if ti, ok := info.(credentials.TLSInfo); ok && err == nil {
		c.mu.Lock()
		st := ti.State
		c.state = &st
		c.mu.Unlock()
	}
	return conn, info, err
}

func (c *tlsCapture) Clone() credentials.TransportCredentials { return c }

// dialRawMinion connects as id with a fresh key and completes the
// handshake; the fleet's auto_accept admits it.
func dialRawMinion(t *testing.T, addr, id string) *rawMinion {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	creds := &tlsCapture{TransportCredentials: credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := pb.NewMinionLinkClient(cc).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Hello{Hello: &pb.Hello{Id: id, PublicKey: pub}}}); err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil || msg.GetChallenge() == nil {
		t.Fatalf("challenge: %v %v", msg, err)
	}
	creds.mu.Lock()
	exp, err := pki.Exporter(creds.state)
	creds.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(priv, pki.AuthTranscript(id, msg.GetChallenge().GetNonce(), exp))
	if err := stream.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Proof{Proof: &pb.Proof{Signature: sig}}}); err != nil {
		t.Fatal(err)
	}
	msg, err = stream.Recv()
	if err != nil || msg.GetWelcome().GetKeyState() != "accepted" {
		t.Fatalf("welcome: %v %v", msg, err)
	}
	return &rawMinion{stream: stream, cc: cc}
}

// call sends a MasterCall and returns the master's reply (ret, error text).
func (r *rawMinion) call(t *testing.T, fun string, args []any, kwargs map[string]any) (any, string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	a, err := wire.List(args)
	if err != nil {
		t.Fatal(err)
	}
	kw, err := wire.Struct(kwargs)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(time.Now().UnixNano())
	if err := r.stream.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Call{Call: &pb.MasterCall{CallId: id, Fun: fun, Args: a, Kwargs: kw}}}); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := r.stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", fun, err)
		}
		if rep := msg.GetCallReply(); rep != nil && rep.GetCallId() == id {
			return wire.Any(rep.GetRet()), rep.GetError()
		}
	}
}

// sendEvent fires an event as this minion (event.send on the wire).
func (r *rawMinion) sendEvent(tag string, data *structpb.Struct) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stream.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Event{Event: &pb.Event{Tag: tag, Data: data, TimeUnixNano: time.Now().UnixNano()}}})
}

func wireStruct(m map[string]any) (*structpb.Struct, error) { return wire.Struct(m) }
