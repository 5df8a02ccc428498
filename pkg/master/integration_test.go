package master_test

// Integration tests: a real master and real minions in one process, talking
// real gRPC over TLS on loopback, with real files in temp dirs.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/master"
	"github.com/brine-cm/brine/pkg/minion"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type testMaster struct {
	*master.Master
	dir    string
	port   int
	cancel context.CancelFunc
	ctl    pb.ControlClient
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startMaster(t testing.TB, dir string, port int, mutate func(*config.Master)) *testMaster {
	t.Helper()
	cfg := config.DefaultMaster()
	cfg.Interface = "127.0.0.1"
	cfg.Port = port
	cfg.DataDir = dir
	cfg.Socket = filepath.Join(dir, "control.sock")
	cfg.FileRoots = map[string][]string{"base": {filepath.Join(dir, "states")}}
	cfg.PillarRoots = map[string][]string{"base": {filepath.Join(dir, "pillar")}}
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := master.New(cfg, master.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("unix://"+cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMaster{Master: m, dir: dir, port: port, cancel: cancel, ctl: pb.NewControlClient(cc)}
	t.Cleanup(func() { tm.stop(); cc.Close() })
	return tm
}

func (tm *testMaster) stop() {
	if tm.cancel != nil {
		tm.cancel()
		tm.Master.Stop()
		tm.cancel = nil
	}
}

type testMinion struct {
	*minion.Minion
	cancel context.CancelFunc
	done   chan struct{}
}

func startMinion(t testing.TB, id string, port int, dataDir string, grains map[string]any, mutate func(*config.Minion)) *testMinion {
	t.Helper()
	cfg := config.DefaultMinion()
	cfg.ID = id
	cfg.Master = config.StringList{"127.0.0.1:" + strconv.Itoa(port)}
	cfg.DataDir = dataDir
	cfg.Grains = grains
	cfg.ReconDefault = 100
	cfg.ReconMax = 500
	cfg.AcceptanceWaitTime = 0.2
	cfg.HostsFile = filepath.Join(dataDir, "hosts")
	if mutate != nil {
		mutate(&cfg)
	}
	mn, err := minion.New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tmn := &testMinion{Minion: mn, cancel: cancel, done: make(chan struct{})}
	go func() { mn.Run(ctx); close(tmn.done) }()
	t.Cleanup(tmn.stop)
	return tmn
}

func (m *testMinion) stop() {
	m.cancel()
	<-m.done
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func (tm *testMaster) runner(t testing.TB, fun string, args []any, kwargs map[string]any) any {
	t.Helper()
	v, err := tm.runnerErr(fun, args, kwargs)
	if err != nil {
		t.Fatalf("runner %s: %v", fun, err)
	}
	return v
}

func (tm *testMaster) runnerErr(fun string, args []any, kwargs map[string]any) (any, error) {
	a, _ := wire.List(args)
	k, _ := wire.Struct(kwargs)
	r, err := tm.ctl.Runner(context.Background(), &pb.RunnerRequest{Fun: fun, Args: a, Kwargs: k})
	if err != nil {
		return nil, err
	}
	return wire.Any(r.GetRet()), nil
}

type published struct {
	started *pb.JobStarted
	returns map[string]*pb.Return
	done    *pb.JobDone
}

func (tm *testMaster) publish(t testing.TB, tgt, tgtType, fun string, args []any, kwargs map[string]any, timeout time.Duration) published {
	t.Helper()
	p, err := tm.publishErr(tgt, tgtType, fun, args, kwargs, timeout)
	if err != nil {
		t.Fatalf("publish %s %s: %v", tgt, fun, err)
	}
	return p
}

func (tm *testMaster) publishErr(tgt, tgtType, fun string, args []any, kwargs map[string]any, timeout time.Duration) (published, error) {
	a, _ := wire.List(args)
	k, _ := wire.Struct(kwargs)
	st, err := tm.ctl.Publish(context.Background(), &pb.PublishRequest{Target: tgt, TgtType: tgtType, Fun: fun, Args: a, Kwargs: k, TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		return published{}, err
	}
	out := published{returns: map[string]*pb.Return{}}
	for {
		ev, err := st.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		switch x := ev.Ev.(type) {
		case *pb.PublishEvent_Started:
			out.started = x.Started
		case *pb.PublishEvent_Ret:
			out.returns[x.Ret.GetId()] = x.Ret
		case *pb.PublishEvent_Done:
			out.done = x.Done
		}
	}
}

func keyList(t testing.TB, tm *testMaster) map[string][]string {
	v := tm.runner(t, "key.list", nil, nil).(map[string]any)
	out := map[string][]string{}
	for st, ids := range v {
		for _, id := range ids.([]any) {
			out[st] = append(out[st], id.(string))
		}
		sort.Strings(out[st])
	}
	return out
}

func TestKeyFlowPendingAcceptedRejected(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, nil)
	web := startMinion(t, "web1", port, filepath.Join(dir, "web1"), map[string]any{"roles": []any{"web"}}, nil)
	bad := startMinion(t, "bad1", port, filepath.Join(dir, "bad1"), nil, nil)

	waitFor(t, "both keys pending", 5*time.Second, func() bool { return len(keyList(t, tm)["pending"]) == 2 })
	// The key shows pending on the master a moment before the minion has
	// read the master's answer; wait for that, then it must not connect.
	waitFor(t, "web1 told pending", 5*time.Second, func() bool { return web.KeyState() == "pending" })
	if web.Connected() {
		t.Fatalf("web1 before acceptance: connected=%v state=%q", web.Connected(), web.KeyState())
	}
	// Unaccepted minions receive nothing: they are not even targetable.
	p := tm.publish(t, "*", "glob", "test.ping", nil, nil, time.Second)
	if len(p.started.GetTargeted()) != 0 || len(p.returns) != 0 {
		t.Fatalf("pending minions were targeted: %v", p.started)
	}

	tm.runner(t, "key.accept", []any{"web1"}, nil)
	tm.runner(t, "key.reject", []any{"bad1"}, nil)
	waitFor(t, "web1 connected", 5*time.Second, web.Connected)

	p = tm.publish(t, "*", "glob", "test.ping", nil, nil, 5*time.Second)
	if got := p.returns["web1"]; got == nil || wire.Any(got.GetRet()) != true {
		t.Fatalf("web1 ping: %v", p.returns)
	}
	if _, ok := p.returns["bad1"]; ok {
		t.Fatal("rejected minion returned")
	}
	keys := keyList(t, tm)
	if fmt.Sprint(keys["accepted"]) != "[web1]" || fmt.Sprint(keys["rejected"]) != "[bad1]" {
		t.Fatalf("keys: %v", keys)
	}
	if bad.Connected() {
		t.Fatal("rejected minion is connected")
	}
	waitFor(t, "bad1 told rejected", 3*time.Second, func() bool { return bad.KeyState() == "rejected" })
}

func TestImpersonationRefused(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutoAccept = true })
	real := startMinion(t, "db1", port, filepath.Join(dir, "db1"), map[string]any{"who": "real"}, nil)
	waitFor(t, "db1 connected", 5*time.Second, real.Connected)

	// Same id, different key (its own data dir): even with auto_accept it
	// must be refused and recorded as denied.
	impostor := startMinion(t, "db1", port, filepath.Join(dir, "impostor"), map[string]any{"who": "impostor"}, nil)
	waitFor(t, "impostor denied", 5*time.Second, func() bool { return impostor.KeyState() == "denied" })
	if impostor.Connected() {
		t.Fatal("impostor connected")
	}
	keys := keyList(t, tm)
	if fmt.Sprint(keys["denied"]) != "[db1]" || fmt.Sprint(keys["accepted"]) != "[db1]" {
		t.Fatalf("keys after impersonation: %v", keys)
	}
	p := tm.publish(t, "db1", "glob", "grains.get", []any{"who"}, nil, 5*time.Second)
	if got := wire.Any(p.returns["db1"].GetRet()); got != "real" {
		t.Fatalf("db1 answered as %v, want the real minion", got)
	}
}

func TestFanOutMissingAndOffline(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutoAccept = true })
	var mins []*testMinion
	for i, role := range []string{"web", "web", "db"} {
		id := fmt.Sprintf("m%d", i+1)
		mins = append(mins, startMinion(t, id, port, filepath.Join(dir, id), map[string]any{"roles": []any{role}, "env": "prod"}, nil))
	}
	for _, mn := range mins {
		waitFor(t, mn.ID()+" connected", 5*time.Second, mn.Connected)
	}
	p := tm.publish(t, "roles:web", "grain", "test.ping", nil, nil, 5*time.Second)
	if fmt.Sprint(p.started.GetTargeted()) != "[m1 m2]" || len(p.returns) != 2 || len(p.done.GetMissing()) != 0 {
		t.Fatalf("grain fan-out: started=%v returns=%d done=%v", p.started, len(p.returns), p.done)
	}
	// A minion busy past the timeout is reported as missing.
	p = tm.publish(t, "m1,m2", "list", "test.sleep", []any{3}, nil, 500*time.Millisecond)
	if fmt.Sprint(p.done.GetMissing()) != "[m1 m2]" {
		t.Fatalf("missing = %v", p.done.GetMissing())
	}
	// A stopped minion is offline; a never-seen id in a list is offline too.
	mins[2].stop()
	waitFor(t, "m3 disconnected", 5*time.Second, func() bool {
		for _, e := range tm.runner(t, "minions.list", nil, nil).([]any) {
			if e.(map[string]any)["id"] == "m3" {
				return e.(map[string]any)["connected"] == false
			}
		}
		return false
	})
	p = tm.publish(t, "m1,m3,ghost", "list", "test.ping", nil, nil, 5*time.Second)
	if fmt.Sprint(p.started.GetOffline()) != "[ghost m3]" || len(p.returns) != 1 {
		t.Fatalf("offline = %v returns=%v", p.started.GetOffline(), p.returns)
	}
	// Bad target: rejected before anything is sent.
	if _, err := tm.publishErr("G@roles:web and (", "compound", "test.ping", nil, nil, time.Second); err == nil {
		t.Fatal("invalid compound target accepted")
	}
	// Unknown function and bad args: a clear error in that minion's return.
	p = tm.publish(t, "m1", "glob", "nosuch.fun", nil, nil, 5*time.Second)
	if r := p.returns["m1"]; r == nil || r.GetSuccess() || r.GetError() == "" {
		t.Fatalf("unknown function return: %v", r)
	}
}

func TestMasterRestartMinionsReconnectJobCacheIntact(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	mdir := filepath.Join(dir, "master")
	tm := startMaster(t, mdir, port, func(c *config.Master) { c.AutoAccept = true })
	a := startMinion(t, "a", port, filepath.Join(dir, "a"), nil, nil)
	b := startMinion(t, "b", port, filepath.Join(dir, "b"), nil, nil)
	waitFor(t, "connected", 5*time.Second, func() bool { return a.Connected() && b.Connected() })
	p := tm.publish(t, "*", "glob", "test.echo", []any{"before restart"}, nil, 5*time.Second)
	jid := p.started.GetJid()
	tm.stop()
	waitFor(t, "minions notice the master is gone", 5*time.Second, func() bool { return !a.Connected() && !b.Connected() })

	tm2 := startMaster(t, mdir, port, nil) // auto_accept off now: keys are remembered
	waitFor(t, "minions reconnect on their own", 10*time.Second, func() bool { return a.Connected() && b.Connected() })
	p2 := tm2.publish(t, "*", "glob", "test.ping", nil, nil, 5*time.Second)
	if len(p2.returns) != 2 {
		t.Fatalf("after restart %d returns", len(p2.returns))
	}
	show := tm2.runner(t, "job.show", []any{jid}, nil).(map[string]any)
	rets := show["returns"].(map[string]any)
	if len(rets) != 2 || rets["a"].(map[string]any)["return"] != "before restart" {
		t.Fatalf("job cache after restart: %v", show)
	}
}

func TestMinionCannotFireReservedEvents(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutoAccept = true })
	mn := startMinion(t, "m", port, filepath.Join(dir, "m"), nil, nil)
	waitFor(t, "connected", 5*time.Second, mn.Connected)
	sub := tm.Bus().Subscribe("*", 100)
	defer sub.Close()
	tm.publish(t, "m", "glob", "event.send", []any{"salt/netapi/hook/deploy/web", map[string]any{"x": 1}}, nil, 5*time.Second)
	tm.publish(t, "m", "glob", "event.send", []any{"myapp/done", map[string]any{"x": 1}}, nil, 5*time.Second)
	deadline := time.After(2 * time.Second)
	for {
		select {
		case ev := <-sub.C:
			if ev.Tag == "salt/netapi/hook/deploy/web" {
				t.Fatal("minion forged a webhook event")
			}
			if ev.Tag == "myapp/done" {
				if ev.Data["id"] != "m" {
					t.Fatalf("event id = %v", ev.Data["id"])
				}
				return
			}
		case <-deadline:
			t.Fatal("custom event from minion never arrived")
		}
	}
}
