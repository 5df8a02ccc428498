package hostile

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/pki"
	pb "github.com/brine-cm/brine/proto/brinev1"
	"github.com/brine-cm/brine/test/binaries"
)

// TestMinionForgesAnotherMinionsIdentity (CVE-2013-4439): an accepted
// minion publishes mine data, returns and events under another minion's
// id. The mine has no id field to forge (the session's id is used, which
// the test shows); returns and events that claim another id are refused,
// counted and audited; the other minion's mine, return and events are
// untouched.
func TestMinionForgesAnotherMinionsIdentity(t *testing.T) {
	t.Parallel()
	pm := startPortMaster(t, "mine_functions:\n  grains.get: [id]\n")
	pm.startMinion("victim")
	pm.acceptMinions("victim")
	waitMine(t, pm, "victim", "victim")
	attacker := pm.acceptedRaw(newIdentity("attacker"))
	bus := pm.watch("*")
	val := func(v any) *structpb.Value { x, _ := structpb.NewValue(v); return x }

	// Mine: the update carries no id; it lands under the sender's.
	attacker.send(t, &pb.MinionMessage{Msg: &pb.MinionMessage_Mine{Mine: &pb.MineUpdate{
		Data: map[string]*structpb.Value{"grains.get": val("victim-owned-by-attacker")}, Replace: true}}})
	waitMine(t, pm, "attacker", "victim-owned-by-attacker")
	waitMine(t, pm, "victim", "victim")

	// Returns: a job to both; the attacker answers first as the victim,
	// then as itself.
	type pubResult struct {
		jid  string
		rets map[string]*pb.Return
	}
	done := make(chan pubResult, 1)
	go func() {
		jid, rets := pm.publish("victim,attacker", "list", "test.echo", []any{"genuine"}, 15*time.Second)
		done <- pubResult{jid, rets}
	}()
	j := attacker.nextJob(t)
	attacker.send(t, &pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: j.GetJid(), Id: "victim", Fun: j.GetFun(), Ret: val("forged"), Success: true}}})
	attacker.waitAck(t, j.GetJid())
	attacker.send(t, &pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: j.GetJid(), Id: "attacker", Fun: j.GetFun(), Ret: val("attacker's own"), Success: true}}})
	attacker.waitAck(t, j.GetJid())
	res := <-done
	if r := res.rets["victim"]; r == nil || r.GetRet().GetStringValue() != "genuine" {
		t.Errorf("victim's return seen by the caller: %v", r)
	}
	if r := res.rets["attacker"]; r == nil || r.GetRet().GetStringValue() != "attacker's own" {
		t.Errorf("attacker's genuine return: %v", r)
	}
	cached := pm.jobReturns(res.jid)
	if v, _ := cached["victim"].(map[string]any); v["return"] != "genuine" {
		t.Errorf("victim's return in the job cache: %v", cached)
	}

	// Events: one claiming the victim's id in its data, one under a tag
	// only the master fires, and an honest one as the control.
	ev := func(tag string, data map[string]any) *pb.MinionMessage {
		s, _ := structpb.NewStruct(data)
		return &pb.MinionMessage{Msg: &pb.MinionMessage_Event{Event: &pb.Event{Tag: tag, Data: s}}}
	}
	attacker.send(t, ev("app/deploy/done", map[string]any{"id": "victim", "ok": true}))
	attacker.send(t, ev("minion/victim/start", map[string]any{}))
	attacker.send(t, ev("salt/netapi/hook/deploy", map[string]any{"id": "victim"}))
	attacker.send(t, ev("app/honest", map[string]any{"x": 1}))
	binaries.Eventually(t, "the honest event", 10*time.Second, func() bool { return len(bus.find("app/honest")) == 1 })
	if h := bus.find("app/honest")[0]; h.GetData().GetFields()["id"].GetStringValue() != "attacker" {
		t.Errorf("honest event's id: %v", h.GetData())
	}
	for _, tag := range []string{"app/deploy/done", "minion/victim/start", "salt/netapi/hook/deploy"} {
		if n := len(bus.find(tag)); n != 0 {
			t.Errorf("forged event %s reached the bus %d times", tag, n)
		}
	}
	if got := pm.metric("brine_minion_refused_total", `reason="forged_id"`); got != 2 {
		t.Errorf("forged_id refusals counted: %v, want 2 (one return, one event)", got)
	}
	if got := pm.metric("brine_minion_refused_total", `reason="reserved_tag"`); got != 2 {
		t.Errorf("reserved_tag refusals counted: %v, want 2", got)
	}
	audits := bus.find("brine/audit/minion/forged_id")
	if len(audits) != 2 {
		t.Fatalf("audit events for forged ids: %d (%v)", len(audits), bus.tags())
	}
	for _, a := range audits {
		if a.GetData().GetFields()["id"].GetStringValue() != "attacker" {
			t.Errorf("audit event names %v, want the authenticated id", a.GetData())
		}
	}
	t.Logf("CVE-2013-4439: 5 forgeries (mine, return, 3 events), 5 refused or confined to the sender")
}

// TestReplayedReturns (CVE-2022-22935, CVE-2022-22936): a captured return
// sent twice, a return for a job sent only to another minion, and a
// return for a job that never existed. Each is dropped and counted; the
// job cache holds one return per minion, the right one.
func TestReplayedReturns(t *testing.T) {
	t.Parallel()
	pm := startPortMaster(t, "")
	pm.startMinion("victim")
	pm.acceptMinions("victim")
	a := pm.acceptedRaw(newIdentity("attacker"))
	val := func(v any) *structpb.Value { x, _ := structpb.NewValue(v); return x }

	done := make(chan string, 1)
	go func() {
		jid, _ := pm.publish("attacker", "glob", "test.echo", []any{"one"}, 10*time.Second)
		done <- jid
	}()
	j := a.nextJob(t)
	ret := &pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: j.GetJid(), Id: "attacker", Fun: j.GetFun(), Ret: val("first"), Success: true}}}
	a.send(t, ret)
	a.waitAck(t, j.GetJid())
	<-done
	replay := &pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: j.GetJid(), Id: "attacker", Fun: j.GetFun(), Ret: val("replayed"), Success: true}}}
	a.send(t, replay)
	a.waitAck(t, j.GetJid())
	if r := pm.jobReturns(j.GetJid()); len(r) != 1 || r["attacker"].(map[string]any)["return"] != "first" {
		t.Errorf("job cache after a replayed return: %v", r)
	}

	// A job for the victim only: the attacker answers it anyway.
	vjid, vrets := pm.publish("victim", "glob", "test.echo", []any{"mine"}, 10*time.Second)
	if len(vrets) != 1 {
		t.Fatalf("victim job: %v", vrets)
	}
	a.send(t, &pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: vjid, Fun: "test.echo", Ret: val("unsolicited"), Success: true}}})
	a.waitAck(t, vjid)
	a.send(t, &pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: "20991231235959000000", Fun: "test.echo", Ret: val("no such job")}}})
	a.waitAck(t, "20991231235959000000")
	if r := pm.jobReturns(vjid); len(r) != 1 || r["victim"].(map[string]any)["return"] != "mine" {
		t.Errorf("victim's job after an unsolicited return: %v", r)
	}
	if got := pm.metric("brine_minion_refused_total", `reason="duplicate_return"`); got != 1 {
		t.Errorf("duplicate returns counted: %v, want 1", got)
	}
	if got := pm.metric("brine_minion_refused_total", `reason="unsolicited_return"`); got != 2 {
		t.Errorf("unsolicited returns counted: %v, want 2", got)
	}
}

// TestJobResentAfterReconnectRunsOnce (CVE-2022-22934): a master (here a
// stand-in speaking the real protocol, with the real brine-minion) sends
// a job, sends it again on the same stream, then breaks the connection
// and sends it once more after the minion reconnects. The command runs
// once; a new job after the reconnect still runs.
func TestJobResentAfterReconnectRunsOnce(t *testing.T) {
	t.Parallel()
	bin := binaries.Build(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	after := filepath.Join(dir, "after-reconnect")
	args, _ := structpb.NewList([]any{fmt.Sprintf("echo ran >> %s", marker)})
	args2, _ := structpb.NewList([]any{fmt.Sprintf("echo ok >> %s", after)})
	job := &pb.Job{Jid: "20261125120000000001", Fun: "cmd.run", Args: args}
	fm := startFakeMaster(t, dir, func(session int, st pb.MinionLink_ConnectServer, rets <-chan *pb.Return) error {
		switch session {
		case 1:
			st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Job{Job: job}})
			st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Job{Job: job}})
			r := <-rets
			st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Ack{Ack: &pb.ReturnAck{Jid: r.GetJid()}}})
			time.Sleep(500 * time.Millisecond) // room for a second run to show
			return status.Error(codes.Unavailable, "master restarting")
		default:
			st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Job{Job: job}})
			st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Job{Job: &pb.Job{Jid: "20261125120000000002", Fun: "cmd.run", Args: args2}}})
			for r := range rets {
				st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Ack{Ack: &pb.ReturnAck{Jid: r.GetJid()}}})
				if r.GetJid() == "20261125120000000002" {
					time.Sleep(500 * time.Millisecond)
					return nil
				}
			}
			return nil
		}
	})
	binaries.Start(t, filepath.Join(dir, "minion.log"), filepath.Join(bin, "brine-minion"), "--config", "/dev/null", "--id", "replayed",
		"--master", fm.addr, "--master-finger", fm.finger, "--data-dir", filepath.Join(dir, "minion"), "--hosts-file", filepath.Join(dir, "hosts"))
	binaries.Eventually(t, "the job after the reconnect", 30*time.Second, func() bool { _, err := os.Stat(after); return err == nil })
	time.Sleep(700 * time.Millisecond)
	if lb, _ := os.ReadFile(filepath.Join(dir, "minion.log")); os.Getenv("HOSTILE_DEBUG") != "" {
		t.Logf("%s", lb)
	}
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "ran\n"); got != 1 {
		t.Fatalf("job sent 3 times (twice on one stream, once after a reconnect) ran %d times", got)
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if fm.sessions < 2 || fm.returns[job.GetJid()] != 1 {
		t.Fatalf("sessions %d, returns for the job %d; want >=2 and 1", fm.sessions, fm.returns[job.GetJid()])
	}
}

// fakeMaster speaks the minion side of MinionLink like brine-master, with
// a script per session, and verifies the minion's proof like the master.
type fakeMaster struct {
	pb.UnimplementedMinionLinkServer
	addr, finger string
	script       func(session int, st pb.MinionLink_ConnectServer, rets <-chan *pb.Return) error
	mu           sync.Mutex
	sessions     int
	returns      map[string]int
}

func startFakeMaster(t *testing.T, dir string, script func(int, pb.MinionLink_ConnectServer, <-chan *pb.Return) error) *fakeMaster {
	cert, err := pki.LoadOrCreateMasterCert(filepath.Join(dir, "fakemaster"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMaster{addr: ln.Addr().String(), finger: pki.CertFingerprint(cert.Certificate[0]), returns: map[string]int{}, script: script}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsServerConfig(cert))))
	pb.RegisterMinionLinkServer(srv, fm)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return fm
}

func (fm *fakeMaster) Connect(st pb.MinionLink_ConnectServer) error {
	msg, err := st.Recv()
	if err != nil {
		return err
	}
	hello := msg.GetHello()
	nonce := []byte("0123456789abcdef0123456789abcdef")
	if err := st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Challenge{Challenge: &pb.Challenge{Nonce: nonce}}}); err != nil {
		return err
	}
	msg, err = st.Recv()
	if err != nil {
		return err
	}
	p, _ := peer.FromContext(st.Context())
	ti := p.AuthInfo.(credentials.TLSInfo)
	exp, _ := pki.Exporter(&ti.State)
	if !pki.VerifyProof(hello.GetPublicKey(), hello.GetId(), nonce, exp, msg.GetProof().GetSignature()) {
		return status.Error(codes.Unauthenticated, "bad proof")
	}
	if err := st.Send(&pb.MasterMessage{Msg: &pb.MasterMessage_Welcome{Welcome: &pb.Welcome{KeyState: "accepted"}}}); err != nil {
		return err
	}
	fm.mu.Lock()
	fm.sessions++
	session := fm.sessions
	fm.mu.Unlock()
	rets := make(chan *pb.Return, 64)
	go func() {
		defer close(rets)
		for {
			msg, err := st.Recv()
			if err != nil {
				return
			}
			if r := msg.GetRet(); r != nil {
				fm.mu.Lock()
				fm.returns[r.GetJid()]++
				fm.mu.Unlock()
				rets <- r
			}
		}
	}()
	err = fm.script(session, st, rets)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func tlsServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
}
