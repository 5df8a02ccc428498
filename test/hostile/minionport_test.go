package hostile

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/brine-cm/brine/proto/brinev1"
)

// attackPayloads are what an attacker sends on the minion stream in place
// of (or after) a handshake, one per kind of MinionMessage: each aims at
// something that would matter if it were accepted.
func attackPayloads(t testing.TB, victim, victimJID string) map[string]*pb.MinionMessage {
	val := func(v any) *structpb.Value { x, _ := structpb.NewValue(v); return x }
	data, _ := structpb.NewStruct(map[string]any{"id": victim, "branch": "main"})
	args, _ := structpb.NewList([]any{"*"})
	p := map[string]*pb.MinionMessage{
		"ret":   {Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: victimJID, Id: victim, Fun: "test.ping", Ret: val("forged"), Success: true}}},
		"event": {Msg: &pb.MinionMessage_Event{Event: &pb.Event{Tag: "salt/netapi/hook/deploy", Data: data}}},
		"mine":  {Msg: &pb.MinionMessage_Mine{Mine: &pb.MineUpdate{Data: map[string]*structpb.Value{"grains.get": val("forged")}, Replace: true}}},
		"call":  {Msg: &pb.MinionMessage_Call{Call: &pb.MasterCall{CallId: "1", Fun: "key.accept", Args: args}}},
		"pong":  {Msg: &pb.MinionMessage_Pong{Pong: &pb.Pong{Seq: 1}}},
	}
	// Every kind of message the proto defines (but the two of the
	// handshake itself) must be tried: a new kind fails here until it is.
	oneof := (&pb.MinionMessage{}).ProtoReflect().Descriptor().Oneofs().ByName("msg")
	for i := 0; i < oneof.Fields().Len(); i++ {
		name := string(oneof.Fields().Get(i).Name())
		if name == "hello" || name == "proof" {
			continue
		}
		if p[name] == nil {
			t.Fatalf("MinionMessage.%s has no attack payload", name)
		}
	}
	return p
}

// TestMinionPortUnauthenticatedMethods (CVE-2020-11651) calls every gRPC
// method of every service in proto/brinev1 on the minion port, from a
// connection with no handshake, a pending key, a rejected key, another
// id's key, and a proof signed by the wrong key; on the MinionLink stream
// it sends every kind of message in each of those states. Everything ends
// in PermissionDenied or Unauthenticated, nothing runs, nothing is stored.
func TestMinionPortUnauthenticatedMethods(t *testing.T) {
	t.Parallel()
	pm := startPortMaster(t, "mine_functions:\n  grains.get: [id]\n")
	pm.startMinion("victim")
	pm.acceptMinions("victim")
	jid, rets := pm.publish("victim", "glob", "test.ping", nil, 20*time.Second)
	if len(rets) != 1 {
		t.Fatalf("baseline ping: %v", rets)
	}
	waitMine(t, pm, "victim", "victim")

	rejected := newIdentity("rejected-1")
	rc := dialRaw(t, pm.addr)
	if _, w, err := rc.handshake(context.Background(), rejected.id, rejected.pub, rejected.priv); err != nil || w.GetKeyState() != "pending" {
		t.Fatalf("rejected-1 enrol: %v %v", w, err)
	}
	if out, code := pm.ctl.Run("key", "reject", rejected.id); code != 0 {
		t.Fatalf("key reject: %s", out)
	}
	attacker := newIdentity("attacker")
	victimPub := keyOf(t, pm, "victim")
	bus := pm.watch("*")

	type state struct {
		name string
		// enter brings a fresh Connect stream into the state; nil stream
		// means the state is "no handshake at all".
		enter    func(ctx context.Context, rc *rawClient) (pb.MinionLink_ConnectClient, error)
		wantCode []codes.Code
	}
	states := []state{
		{"no handshake", func(ctx context.Context, rc *rawClient) (pb.MinionLink_ConnectClient, error) {
			return pb.NewMinionLinkClient(rc.cc).Connect(ctx)
		}, []codes.Code{codes.Unauthenticated}},
		{"pending key", func(ctx context.Context, rc *rawClient) (pb.MinionLink_ConnectClient, error) {
			me := newIdentity("pending-" + randSuffix())
			st, w, err := rc.handshake(ctx, me.id, me.pub, me.priv)
			if err == nil && w.GetKeyState() != "pending" {
				t.Fatalf("pending: welcome %v", w)
			}
			return st, err
		}, []codes.Code{codes.PermissionDenied}},
		{"rejected key", func(ctx context.Context, rc *rawClient) (pb.MinionLink_ConnectClient, error) {
			st, w, err := rc.handshake(ctx, rejected.id, rejected.pub, rejected.priv)
			if err == nil && w.GetKeyState() != "rejected" {
				t.Fatalf("rejected: welcome %v", w)
			}
			return st, err
		}, []codes.Code{codes.PermissionDenied}},
		{"another id's key", func(ctx context.Context, rc *rawClient) (pb.MinionLink_ConnectClient, error) {
			st, w, err := rc.handshake(ctx, "victim", attacker.pub, attacker.priv)
			if err == nil && w.GetKeyState() != "denied" {
				t.Fatalf("impostor: welcome %v", w)
			}
			return st, err
		}, []codes.Code{codes.PermissionDenied}},
		{"proof by the wrong key", func(ctx context.Context, rc *rawClient) (pb.MinionLink_ConnectClient, error) {
			st, _, err := rc.handshake(ctx, "victim", victimPub, attacker.priv)
			return st, err
		}, []codes.Code{codes.Unauthenticated}},
	}

	methods := allMethods()
	cases := 0
	for _, s := range states {
		t.Run(s.name, func(t *testing.T) {
			for kind, msg := range attackPayloads(t, "victim", jid) {
				rc := dialRaw(t, pm.addr)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				st, err := s.enter(ctx, rc)
				if err == nil {
					err = st.Send(msg)
					if err == nil {
						_, err = st.Recv()
					}
					if errors.Is(err, io.EOF) { // the send raced the server's end of stream
						_, err = st.Recv()
					}
				}
				if !oneOf(codeOf(err), s.wantCode) {
					t.Errorf("%s, %s message: %v, want %v", s.name, kind, err, s.wantCode)
				}
				cases++
				// The other services, on the same connection, in the same state.
				for _, md := range methods {
					if md.full == pb.MinionLink_Connect_FullMethodName {
						continue
					}
					err := callGeneric(ctx, rc.cc, md)
					if codeOf(err) != codes.PermissionDenied {
						t.Errorf("%s: %s on the minion port: %v, want PermissionDenied", s.name, md.full, err)
					}
					cases++
				}
				cancel()
			}
		})
	}
	t.Logf("CVE-2020-11651: %d calls over %d methods and %d handshake states", cases, len(methods), len(states))

	// Nothing ran and nothing was stored: the keys are what the test
	// made, the job cache holds only the baseline ping, the victim's mine
	// and return are its own, and no event any attack aimed at was fired.
	keys := pm.keys()
	if strings.Join(keys["accepted"], ",") != "victim" || strings.Join(keys["rejected"], ",") != "rejected-1" {
		t.Errorf("keys after the attacks: %v", keys)
	}
	if len(keys["denied"]) != 1 || keys["denied"][0] != "victim" {
		t.Errorf("the impostor's key is kept as denied for the operator: %v", keys["denied"])
	}
	jobs, err := pm.runner("job.list")
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := jobs.([]any); len(l) != 1 {
		t.Errorf("job cache after the attacks: %v; want only the baseline ping", jobs)
	}
	if r := pm.jobReturns(jid); len(r) != 1 || r["victim"].(map[string]any)["return"] != true {
		t.Errorf("victim's return after the attacks: %v", r)
	}
	waitMine(t, pm, "victim", "victim")
	for _, tag := range bus.tags() {
		if strings.HasPrefix(tag, "salt/netapi/") || strings.HasPrefix(tag, "job/") || (strings.HasPrefix(tag, "mine/") && tag != "mine/victim/update") || strings.HasPrefix(tag, "key/victim/accept") {
			t.Errorf("event fired by an attack: %s", tag)
		}
	}
	if n := len(bus.find("brine/audit/minion/pending_sent")); n == 0 {
		t.Errorf("no audit event for messages from a pending key; saw %v", bus.tags())
	}
	for _, reason := range []string{"no_hello", "pending_sent", "key_rejected", "key_denied", "bad_proof", "wrong_service"} {
		if pm.metric("brine_minion_refused_total", `reason="`+reason+`"`) == 0 {
			t.Errorf("brine_minion_refused_total{reason=%q} not counted", reason)
		}
	}
}

// TestMinionPortNoOperatorAction: an accepted minion asks the master for
// every runner the control socket offers, by MasterCall. Only mine.get is
// served to minions; key.accept, key.delete, event.fire... are refused and
// change nothing.
func TestMinionPortNoOperatorAction(t *testing.T) {
	t.Parallel()
	pm := startPortMaster(t, "")
	runners := runnerNames(t, pm)
	if len(runners) < 10 {
		t.Fatalf("runner list: %v", runners)
	}
	s2 := pm.acceptedRaw(newIdentity("attacker"))
	other := newIdentity("bystander")
	rc := dialRaw(t, pm.addr)
	if _, w, err := rc.handshake(context.Background(), other.id, other.pub, other.priv); err != nil || w.GetKeyState() != "pending" {
		t.Fatalf("bystander: %v %v", w, err)
	}
	args, _ := structpb.NewList([]any{"*"})
	for _, fun := range runners {
		s2.send(t, &pb.MinionMessage{Msg: &pb.MinionMessage_Call{Call: &pb.MasterCall{CallId: fun, Fun: fun, Args: args}}})
	}
	got := map[string]*pb.MasterCallReply{}
	deadline := time.After(20 * time.Second)
	for len(got) < len(runners) {
		select {
		case r := <-s2.replies:
			got[r.GetCallId()] = r
		case <-deadline:
			t.Fatalf("call replies: got %d of %d", len(got), len(runners))
		}
	}
	for _, fun := range runners {
		r := got[fun]
		if fun == "mine.get" {
			// Served (its own argument check answers), unlike the rest.
			if strings.Contains(r.GetError(), "not available to minions") {
				t.Errorf("mine.get from a minion: %v", r.GetError())
			}
			continue
		}
		if !strings.Contains(r.GetError(), "not available to minions") {
			t.Errorf("%s from a minion: reply %v, want refused", fun, r)
		}
	}
	if k := pm.keys(); strings.Join(k["pending"], ",") != "bystander" {
		t.Errorf("keys after key.* from a minion: %v", k)
	}
	t.Logf("no operator action: %d runners tried from the minion port, %d refused", len(runners), len(runners)-1)
}

type methodDesc struct {
	full                 string
	in, out              protoreflect.MessageDescriptor
	clientStream, server bool
}

// allMethods enumerates every method of every service in proto/brinev1.
func allMethods() []methodDesc {
	var out []methodDesc
	svcs := pb.File_brine_proto.Services()
	for i := 0; i < svcs.Len(); i++ {
		sd := svcs.Get(i)
		for j := 0; j < sd.Methods().Len(); j++ {
			md := sd.Methods().Get(j)
			out = append(out, methodDesc{full: "/" + string(sd.FullName()) + "/" + string(md.Name()), in: md.Input(), out: md.Output(),
				clientStream: md.IsStreamingClient(), server: md.IsStreamingServer()})
		}
	}
	return out
}

// callGeneric calls any method with an empty request and returns the
// stream's final error.
func callGeneric(ctx context.Context, cc *grpc.ClientConn, md methodDesc) error {
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, md.full)
	if err != nil {
		return err
	}
	if err := st.SendMsg(dynamicpb.NewMessage(md.in)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	st.CloseSend()
	for {
		if err := st.RecvMsg(dynamicpb.NewMessage(md.out)); err != nil {
			return err
		}
	}
}

func oneOf(c codes.Code, want []codes.Code) bool {
	for _, w := range want {
		if c == w {
			return true
		}
	}
	return false
}

// runnerNames asks the control socket for a runner that does not exist:
// its refusal lists every one there is.
func runnerNames(t testing.TB, pm *portMaster) []string {
	_, err := pm.runner("no.such.runner")
	m := regexp.MustCompile(`try: \[([^\]]*)\]`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("runner list not in %v", err)
	}
	names := strings.Fields(m[1])
	sort.Strings(names)
	return names
}

// keyOf reads id's accepted public key from the master's pki_dir.
func keyOf(t testing.TB, pm *portMaster, id string) ed25519.PublicKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pm.dataDir, "pki", "minions", id))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("key of %s: no PEM", id)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PublicKey)
}

func randSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func waitMine(t testing.TB, pm *portMaster, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := pm.runner("mine.get", id, "grains.get")
		if err == nil {
			if m, ok := v.(map[string]any); ok && m[id] == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mine of %s: %v %v, want %q", id, v, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIdleConnectionWithoutStreamClosed: a client that completes TLS and
// HTTP/2 on the minion port but opens no stream is dropped once the
// master's idle timeout (20 s) passes, while an accepted minion that has
// sent nothing for as long keeps its connection and still gets jobs.
func TestIdleConnectionWithoutStreamClosed(t *testing.T) {
	t.Parallel()
	pm := startPortMaster(t, "")
	quiet := pm.acceptedRaw(newIdentity("quiet"))
	rc := dialRaw(t, pm.addr)
	rc.cc.Connect()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	for s := rc.cc.GetState(); s != connectivity.Ready; s = rc.cc.GetState() {
		if !rc.cc.WaitForStateChange(ctx, s) {
			t.Fatalf("never connected: %v", s)
		}
	}
	if !rc.cc.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatalf("idle connection still up after %s", time.Since(start))
	}
	idle := time.Since(start)
	if idle < 15*time.Second {
		t.Fatalf("idle connection dropped after %s: too early to be the idle timeout", idle)
	}
	go pm.publishQuiet("quiet", "test.ping", 10*time.Second)
	j := quiet.nextJob(t)
	if j.GetFun() != "test.ping" {
		t.Fatalf("job to the quiet minion: %v", j)
	}
	t.Logf("stream-less connection dropped after %s; a silent accepted minion kept its stream", idle.Round(time.Millisecond))
}
