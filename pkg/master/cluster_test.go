package master_test

// Three masters as one, in this process: embedded NATS servers routed on
// loopback, real JetStream on disk, real minions over TLS, each minion on
// one of the masters. (Killing a master for real is test/cluster's job.)

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/master"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

const deployReaction = `deploy:
  runner.event.send:
    - tag: deploy/done
    - data:
        ref: {{ data['post']['ref'] | tojson }}
`

const pongReaction = `pong:
  runner.event.send:
    - tag: custom/pong
    - data:
        n: {{ data['n'] | tojson }}
`

// startClusterMasters starts n masters at once (New waits for a JetStream
// quorum, so they cannot start one after the other).
func startClusterMasters(t testing.TB, dir string, n int, mutate func(i int, c *config.Master)) []*testMaster {
	t.Helper()
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	cfgs := make([]config.Master, n)
	for i := range cfgs {
		d := filepath.Join(dir, fmt.Sprintf("master%d", i))
		cfg := config.DefaultMaster()
		cfg.Interface, cfg.Port, cfg.DataDir = "127.0.0.1", freePort(t), d
		cfg.Socket = filepath.Join(d, "control.sock")
		cfg.FileRoots = map[string][]string{"base": {filepath.Join(dir, "states")}}
		cfg.PillarRoots = map[string][]string{"base": {filepath.Join(dir, "pillar")}}
		cfg.Cluster = &config.Cluster{Name: "test", NATSListen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), RoutesListen: routes[i], Routes: routes}
		if mutate != nil {
			mutate(i, &cfg)
		}
		cfgs[i] = cfg
	}
	out := make([]*testMaster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := master.New(cfgs[i], master.Options{Logger: quietLog()})
			if err != nil {
				errs[i] = err
				return
			}
			ctx, cancel := context.WithCancel(context.Background())
			if err := m.Start(ctx); err != nil {
				cancel()
				errs[i] = err
				return
			}
			cc, err := grpc.NewClient("unix://"+cfgs[i].Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				cancel()
				errs[i] = err
				return
			}
			out[i] = &testMaster{Master: m, dir: cfgs[i].DataDir, port: cfgs[i].Port, cancel: cancel, ctl: pb.NewControlClient(cc)}
		}()
	}
	wg.Wait()
	for i, tm := range out {
		if tm != nil {
			t.Cleanup(tm.stop)
		}
		if errs[i] != nil {
			t.Fatalf("master %d: %v", i, errs[i])
		}
	}
	return out
}

func connectedOn(t *testing.T, tm *testMaster) []string {
	var ids []string
	for _, e := range tm.runner(t, "minions.list", nil, nil).([]any) {
		if mn := e.(map[string]any); mn["connected"] == true {
			ids = append(ids, mn["id"].(string))
		}
	}
	sort.Strings(ids)
	return ids
}

// eventsOn records every event a master's `brinectl events` stream
// delivers; the getter filters by glob.
func eventsOn(t *testing.T, tm *testMaster) (func(glob string) []*pb.Event, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := tm.ctl.Events(ctx, &pb.EventsRequest{TagGlob: "*"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*pb.Event
	go func() {
		for {
			ev, err := st.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
	}()
	return func(glob string) []*pb.Event {
		mu.Lock()
		defer mu.Unlock()
		var out []*pb.Event
		for _, ev := range got {
			if event.MatchTag(glob, ev.GetTag()) {
				out = append(out, ev)
			}
		}
		return out
	}, cancel
}

func TestClusterThreeMasters(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "states"), 0o755)
	deploy := filepath.Join(dir, "deploy.sls")
	pong := filepath.Join(dir, "pong.sls")
	os.WriteFile(deploy, []byte(deployReaction), 0o644)
	os.WriteFile(pong, []byte(pongReaction), 0o644)
	hookPorts := []int{freePort(t), 0, freePort(t)}
	ms := startClusterMasters(t, dir, 3, func(i int, c *config.Master) {
		c.MineFunctions = map[string]any{"network.get_hostname": []any{}}
		c.Reactor = []any{
			map[string]any{"salt/netapi/hook/deploy": []any{deploy}},
			map[string]any{"custom/ping": []any{pong}},
		}
		if hookPorts[i] != 0 {
			c.Webhook = &config.Webhook{Listen: fmt.Sprintf("127.0.0.1:%d", hookPorts[i]), AllowUnauthenticated: true, ReplayWindow: 3600, MaxBodyBytes: 1 << 20}
		}
	})
	a, b, c := ms[0], ms[1], ms[2]

	// Two minions on each master, none accepted yet.
	roles := map[string]string{"a": "web", "b": "db", "c": "web"}
	var minions []*testMinion
	for i, tm := range ms {
		name := string(rune('a' + i))
		for j := 1; j <= 2; j++ {
			id := fmt.Sprintf("m-%s%d", name, j)
			minions = append(minions, startMinion(t, id, tm.port, filepath.Join(dir, id), map[string]any{"roles": []any{roles[name]}, "on": name}, nil))
		}
	}
	all := []string{"m-a1", "m-a2", "m-b1", "m-b2", "m-c1", "m-c2"}
	// Every master lists every pending key, whichever master the minion
	// knocked on.
	for _, tm := range ms {
		waitFor(t, "six pending keys on every master", 20*time.Second, func() bool {
			return fmt.Sprint(keyList(t, tm)["pending"]) == fmt.Sprint(all)
		})
	}
	// A key accepted on B works on A and C: the minions parked there are
	// told at once, reconnect and are served.
	b.runner(t, "key.accept", []any{"m-*"}, nil)
	for _, mn := range minions {
		waitFor(t, mn.ID()+" connected", 20*time.Second, mn.Connected)
	}
	for _, tm := range ms {
		waitFor(t, "every master's registry knows all six connected", 20*time.Second, func() bool {
			return fmt.Sprint(connectedOn(t, tm)) == fmt.Sprint(all)
		})
	}

	// A job from A reaches minions on B and C, and the returns gather on A.
	p := a.publish(t, "*", "glob", "grains.get", []any{"on"}, nil, 15*time.Second)
	if len(p.returns) != 6 || len(p.done.GetMissing()) != 0 || len(p.started.GetOffline()) != 0 {
		t.Fatalf("job from A: returns %d, done %v, started %v", len(p.returns), p.done, p.started)
	}
	for id, r := range p.returns {
		if got := wire.Any(r.GetRet()); got != string(id[2]) {
			t.Fatalf("%s answered %v", id, got)
		}
	}
	// Grain targeting on C uses grains of minions connected elsewhere.
	p = c.publish(t, "roles:web", "grain", "test.ping", nil, nil, 15*time.Second)
	if fmt.Sprint(p.started.GetTargeted()) != "[m-a1 m-a2 m-c1 m-c2]" || len(p.returns) != 4 {
		t.Fatalf("grain job from C: started %v returns %d", p.started, len(p.returns))
	}
	// The job cache is shared: B shows C's job with every return. Each
	// master writes its minions' returns to the cache after handing them
	// to the caller, so the cache may trail the caller by a moment.
	var jobShow map[string]any
	waitFor(t, "job.show on B has all four returns", 10*time.Second, func() bool {
		jobShow = b.runner(t, "job.show", []any{p.started.GetJid()}, nil).(map[string]any)
		return len(jobShow["returns"].(map[string]any)) == 4
	})

	// mine.get on C sees the minions of A (and everyone).
	waitFor(t, "mine on C has all six", 20*time.Second, func() bool {
		got := c.runner(t, "mine.get", []any{"m-a*", "network.get_hostname"}, nil).(map[string]any)
		all := c.runner(t, "mine.get", []any{"*", "network.get_hostname"}, nil).(map[string]any)
		return len(got) == 2 && len(all) == 6
	})

	// Impersonation is refused cluster-wide: m-a1's id with another key,
	// knocking on C, is denied and recorded for every master to see.
	impostor := startMinion(t, "m-a1", c.port, filepath.Join(dir, "impostor"), nil, nil)
	waitFor(t, "impostor denied", 10*time.Second, func() bool { return impostor.KeyState() == "denied" })
	impostor.stop()
	waitFor(t, "A lists the denied key", 5*time.Second, func() bool { return fmt.Sprint(keyList(t, a)["denied"]) == "[m-a1]" })

	// A webhook accepted on A is reacted to exactly once, by one of the
	// masters; its replay on C (same delivery id) is refused.
	onB, stopB := eventsOn(t, b)
	defer stopB()
	onA, stopA := eventsOn(t, a)
	defer stopA()
	onC, stopC := eventsOn(t, c)
	defer stopC()
	doneOnB := func() []*pb.Event { return onB("deploy/done") }
	pongOnA := func() []*pb.Event { return onA("custom/pong") }
	hookOnC := func() []*pb.Event { return onC("salt/netapi/hook/*") }
	waitFor(t, "event streams live on A, B and C", 10*time.Second, func() bool {
		a.runner(t, "event.fire", []any{"probe/x", map[string]any{}}, nil)
		return len(onA("probe/x")) > 0 && len(onB("probe/x")) > 0 && len(onC("probe/x")) > 0
	})
	post := func(port int, delivery string) string {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/hook/deploy", port), bytes.NewBufferString(`{"ref": "refs/heads/main"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Delivery", delivery)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(buf.String()))
	}
	if got := post(hookPorts[0], "guid-1"); !strings.HasPrefix(got, "200") || strings.Contains(got, "replayed") {
		t.Fatalf("hook on A: %s", got)
	}
	if got := post(hookPorts[2], "guid-1"); !strings.Contains(got, "replayed") {
		t.Fatalf("replay on C: %s", got)
	}
	// And a bus event (fired on B) matching a rule is reacted to once.
	b.runner(t, "event.fire", []any{"custom/ping", map[string]any{"n": 7}}, nil)

	waitFor(t, "the hook's reaction", 20*time.Second, func() bool { return len(doneOnB()) >= 1 })
	waitFor(t, "the ping's reaction", 20*time.Second, func() bool { return len(pongOnA()) >= 1 })
	time.Sleep(3 * time.Second) // room for a wrong second reaction
	if n := len(doneOnB()); n != 1 {
		t.Fatalf("the hook was reacted to %d times", n)
	}
	if ev := doneOnB()[0]; wire.Map(ev.GetData())["ref"] != "refs/heads/main" {
		t.Fatalf("deploy/done: %v", ev)
	}
	if n := len(pongOnA()); n != 1 {
		t.Fatalf("custom/ping was reacted to %d times", n)
	}
	// brinectl events on C saw the hook accepted on A.
	if hooks := hookOnC(); len(hooks) != 1 || hooks[0].GetTag() != "salt/netapi/hook/deploy" {
		t.Fatalf("hook events on C: %v", hooks)
	}
	reactions := 0.0
	for _, tm := range ms {
		st := tm.runner(t, "status", nil, nil).(map[string]any)
		cl := st["cluster"].(map[string]any)
		if n, _ := cl["webhook_reactions"].(map[string]any)["started"].(float64); n > 0 {
			reactions += n
		}
		if len(cl["masters"].([]any)) != 3 {
			t.Fatalf("status cluster: %v", cl)
		}
	}
	if reactions != 1 {
		t.Fatalf("webhook reactions across masters: %v", reactions)
	}

	// Rejecting on C cuts the minion off on B, where it is connected.
	c.runner(t, "key.reject", []any{"m-b2"}, nil)
	waitFor(t, "m-b2 told rejected", 10*time.Second, func() bool { return minions[3].KeyState() == "rejected" })
	waitFor(t, "A forgets m-b2", 5*time.Second, func() bool {
		return fmt.Sprint(connectedOn(t, a)) == "[m-a1 m-a2 m-b1 m-c1 m-c2]"
	})
	p = a.publish(t, "*", "glob", "test.ping", nil, nil, 10*time.Second)
	if len(p.returns) != 5 || p.returns["m-b2"] != nil {
		t.Fatalf("after reject: %v", p.returns)
	}
}
