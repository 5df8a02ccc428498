package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// jobOutcome is one publish as brinectl sees it over the control socket.
type jobOutcome struct {
	targeted, returns, ok int
	allIn                 time.Duration // from the request to the last return
}

func publish(ctx context.Context, mp *masterProc, tgt, tgtType, fun string, args []any, kwargs map[string]any, timeout time.Duration) (jobOutcome, error) {
	var out jobOutcome
	wa, err := wire.List(args)
	if err != nil {
		return out, err
	}
	wk, err := wire.Struct(kwargs)
	if err != nil {
		return out, err
	}
	sctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	t0 := time.Now()
	stream, err := mp.client.Publish(sctx, &pb.PublishRequest{Target: tgt, TgtType: tgtType, Fun: fun, Args: wa, Kwargs: wk,
		TimeoutMs: timeout.Milliseconds(), User: "brine-bench"})
	if err != nil {
		return out, fmt.Errorf("publish %s: %w", fun, err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("publish %s: %w", fun, err)
		}
		switch x := ev.Ev.(type) {
		case *pb.PublishEvent_Started:
			out.targeted = len(x.Started.GetTargeted())
		case *pb.PublishEvent_Ret:
			out.returns++
			if x.Ret.GetSuccess() {
				out.ok++
			}
			if out.returns == out.targeted {
				out.allIn = time.Since(t0)
			}
		case *pb.PublishEvent_Done:
			if out.allIn == 0 {
				out.allIn = time.Since(t0)
			}
			return out, nil
		}
	}
}

func mineCount(ctx context.Context, mp *masterProc) (int, time.Duration, error) {
	args, _ := wire.List([]any{"roles:bench", "network.ip_addrs"})
	kw, _ := wire.Struct(map[string]any{"tgt_type": "grain"})
	t0 := time.Now()
	rep, err := mp.client.Control.Runner(ctx, &pb.RunnerRequest{Fun: "mine.get", Args: args, Kwargs: kw})
	d := time.Since(t0)
	if err != nil {
		return 0, d, fmt.Errorf("mine.get: %w", err)
	}
	return len(rep.GetRet().GetStructValue().GetFields()), d, nil
}

// connectStorm starts every minion at once and waits for all of them to be
// connected and to have published their mine.
func connectStorm(ctx context.Context, cfg *Config, mp *masterProc, f *fleet) (Row, error) {
	n := len(f.minions)
	time.Sleep(time.Second) // the master's start-up garbage settles
	before, err := rssKiB(mp.pid)
	if err != nil {
		return Row{}, err
	}
	t0 := time.Now()
	f.start(ctx, cfg.Ramp)
	up, err := f.waitConnected(ctx, mp, 10*time.Minute)
	if err != nil {
		return Row{}, err
	}
	connected := time.Since(t0)
	var mined int
	for {
		if mined, _, err = mineCount(ctx, mp); err != nil {
			return Row{}, err
		}
		if err := mp.alive(); err != nil {
			return Row{}, err
		}
		if mined == n || time.Since(t0) > 10*time.Minute {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	mineDone := time.Since(t0)
	peak, _ := rssKiB(mp.pid)
	time.Sleep(cfg.Settle)
	after, err := rssKiB(mp.pid)
	if err != nil {
		return Row{}, err
	}
	per := float64(after-before) / float64(n)
	rt := ""
	if gm, err := mp.goMetrics(ctx); err == nil {
		rt = fmt.Sprintf("; Go heap %.1f KiB, stacks %.1f KiB, %.1f goroutines per minion",
			gm["go_memstats_heap_alloc_bytes"]/1024/float64(n), gm["go_memstats_stack_inuse_bytes"]/1024/float64(n), gm["go_goroutines"]/float64(n))
	}
	failed, timedOut := masterHandshakeFailures(filepath.Join(filepath.Dir(mp.dataDir), "master.log"))
	_ = f.retries.write(filepath.Join(filepath.Dir(mp.dataDir), "minion-retries.txt"))
	rt += fmt.Sprintf("; minions: %s; master: %d handshakes failed, %d timed out", f.retries.summary(), failed, timedOut)
	name := "connect storm"
	if cfg.Ramp > 0 {
		name = fmt.Sprintf("connect, %d/s ramp", cfg.Ramp)
	}
	return Row{Scenario: name, N: n, Count: up, Want: n,
		Figure: fmt.Sprintf("%.2f s to all connected", connected.Seconds()),
		Detail: fmt.Sprintf("mine of all in %.1f s; master RSS %s → %s KiB (peak %s): **%.1f KiB per minion**",
			mineDone.Seconds(), thousands(before), thousands(after), thousands(peak), per) + rt,
		Values: []float64{connected.Seconds(), per}}, nil
}

func pingFanout(ctx context.Context, cfg *Config, mp *masterProc, f *fleet) (Row, error) {
	n := len(f.minions)
	var times []float64
	minRet := n
	for i := 0; i < cfg.Rounds; i++ {
		o, err := publish(ctx, mp, "*", "glob", "test.ping", nil, nil, time.Minute)
		if err != nil {
			return Row{}, err
		}
		minRet = min(minRet, o.ok)
		times = append(times, ms(o.allIn))
	}
	p50, p99 := pctls(times)
	return Row{Scenario: "test.ping fan-out", N: n, Count: minRet, Want: n, Values: times,
		Figure: fmt.Sprintf("p50 %s", fmtMs(p50)),
		Detail: fmt.Sprintf("p99 %s over %d rounds; fewest returns in a round %d", fmtMs(p99), cfg.Rounds, minRet)}, nil
}

func hostsApply(ctx context.Context, cfg *Config, mp *masterProc, f *fleet) (Row, error) {
	n := len(f.minions)
	o, err := publish(ctx, mp, "*", "glob", "state.apply", []any{"hosts"}, nil, 5*time.Minute)
	if err != nil {
		return Row{}, err
	}
	// Every minion of a full env lists its group-1 peers and itself.
	b, err := os.ReadFile(filepath.Join(filepath.Dir(mp.dataDir), "minions", minionID(0), "hosts"))
	entries := 0
	if err == nil {
		entries = strings.Count(string(b), "\n")
	}
	return Row{Scenario: "state.apply hosts", N: n, Count: o.ok, Want: n, Values: []float64{ms(o.allIn)},
		Figure: fmt.Sprintf("%.2f s to all returns", o.allIn.Seconds()),
		Detail: fmt.Sprintf("%d succeeded; rendered per minion from the mine (%d minions per env), written to a temp hosts file (%d lines on %s)",
			o.ok, min(groupSize, n), entries, minionID(0))}, nil
}

// subscribe opens an event stream and proves it is live by waiting for an
// event the caller triggers with poke.
func subscribe(ctx context.Context, mp *masterProc, glob string, isPoke func(*pb.Event) bool, poke func() error) (interface{ Recv() (*pb.Event, error) }, error) {
	stream, err := mp.client.Events(ctx, glob)
	if err != nil {
		return nil, fmt.Errorf("events %s: %w", glob, err)
	}
	got := make(chan error, 1)
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				got <- err
				return
			}
			if isPoke(ev) {
				got <- nil
				return
			}
		}
	}()
	for i := 0; i < 100; i++ {
		if err := poke(); err != nil {
			return nil, err
		}
		select {
		case err := <-got:
			return stream, err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("events %s: subscription never saw its own probe", glob)
}

func eventIngest(ctx context.Context, cfg *Config, mp *masterProc, f *fleet) (Row, error) {
	n := len(f.minions)
	per := max(1, cfg.Events/n)
	total := per * n
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := subscribe(sctx, mp, "bench/ev*",
		func(ev *pb.Event) bool { return ev.GetTag() == "bench/evprobe" },
		func() error { return f.minions[0].SendEvent(ctx, "bench/evprobe", map[string]any{}) })
	if err != nil {
		return Row{}, err
	}
	var received atomic.Int64
	var last atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			if ev.GetTag() == "bench/ev" {
				last.Store(time.Now().UnixNano())
				if received.Add(1) == int64(total) {
					return
				}
			}
		}
	}()
	t0 := time.Now()
	var wg sync.WaitGroup
	var retries atomic.Int64
	for _, m := range f.minions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := map[string]any{"k": "v"}
			for i := 0; i < per; i++ {
				// A full outbound queue is back-pressure, not loss: wait and resend.
				for m.SendEvent(ctx, "bench/ev", data) != nil {
					retries.Add(1)
					if ctx.Err() != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	sent := time.Since(t0)
	// Wait for the tail; an event missing after 5 s of silence is lost.
	for {
		before := received.Load()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		if received.Load() == int64(total) || received.Load() == before {
			break
		}
	}
	cancel()
	got := received.Load()
	span := time.Duration(last.Load() - t0.UnixNano())
	// Where a loss happened: on the master's bus, or before it.
	where := ""
	if gm, err := mp.goMetrics(ctx); err == nil {
		var pub float64
		for k, v := range gm {
			if strings.HasPrefix(k, "brine_events_total{") && strings.Contains(k, `"custom"`) {
				pub += v
			}
		}
		where = fmt.Sprintf("; master bus: %s custom-tag events published, %s dropped (all subscribers)",
			thousands(int64(pub)), thousands(int64(gm["brine_events_dropped_total"])))
	}
	rate := float64(got) / span.Seconds()
	return Row{Scenario: "event ingest", N: n, Count: int(got), Want: total, Lost: total - int(got), Values: []float64{rate},
		Figure: fmt.Sprintf("%s events/s", thousands(int64(rate))),
		Detail: fmt.Sprintf("%s sent (%d per minion) in %.2f s, %s received by a control-socket subscriber, **lost %d**; sender waits on a full queue: %d",
			thousands(int64(total)), per, sent.Seconds(), thousands(got), total-int(got), retries.Load()) + where}, nil
}

// hookPace is the offered load of the webhook scenario's paced phase:
// issue 13's target of 1,000 verified hooks a second.
const hookPace = 1000

// webhookReactor runs two phases. The burst sends cfg.Hooks hooks from
// cfg.HookConns senders as fast as the master answers: its rate is the
// most hooks a second the master takes, and its latencies are mostly
// queueing once reactions fall behind. The paced phase then offers
// cfg.Hooks more at hookPace a second, each request on its own schedule
// whatever the answers do (open loop): its latencies say whether that load
// is sustained. Latency is always request start -> job/<jid>/new seen by
// a control-socket subscriber.
func webhookReactor(ctx context.Context, cfg *Config, mp *masterProc, f *fleet) (Row, error) {
	h := cfg.Hooks
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The probe is a job published directly, with an argument no hook uses.
	stream, err := subscribe(sctx, mp, "job/*/new",
		func(ev *pb.Event) bool { return hookArg(ev) == -1 },
		func() error {
			_, err := publish(ctx, mp, minionID(0), "list", "test.echo", []any{-1}, nil, 10*time.Second)
			return err
		})
	if err != nil {
		return Row{}, err
	}
	// Hooks 0..h-1 are the burst, h..2h-1 the paced phase.
	sent := make([]atomic.Int64, 2*h)
	seen := make([]atomic.Int64, 2*h)
	var seenBurst, seenPaced atomic.Int64
	burstDone, pacedDone := make(chan struct{}), make(chan struct{})
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			i := hookArg(ev)
			if i < 0 || i >= 2*h || sent[i].Load() == 0 || !seen[i].CompareAndSwap(0, now) {
				continue
			}
			if i < h {
				if seenBurst.Add(1) == int64(h) {
					close(burstDone)
				}
			} else if seenPaced.Add(1) == int64(h) {
				close(pacedDone)
			}
		}
	}()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 256}}
	url := "http://" + mp.webhookAddr + "/hook/bench/deploy"
	var bad atomic.Int64
	var firstErr atomic.Value
	run := time.Now().UnixNano()
	post := func(i int) {
		body := []byte(fmt.Sprintf(`{"n": %d, "ref": "refs/heads/main"}`, i))
		mac := hmac.New(sha256.New, mp.hookSecret)
		mac.Write(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d-%d", run, i))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		sent[i].Store(time.Now().UnixNano())
		resp, err := client.Do(req)
		if err != nil {
			bad.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			bad.Add(1)
			firstErr.CompareAndSwap(nil, resp.Status)
		}
	}
	// phase returns the latencies (ms) of hooks from..from+h-1 and the
	// time from the first request to the last job seen.
	phase := func(from int) ([]float64, time.Duration) {
		var lat []float64
		var first, last int64
		for i := from; i < from+h; i++ {
			s, e := sent[i].Load(), seen[i].Load()
			if s == 0 {
				continue
			}
			if first == 0 || s < first {
				first = s
			}
			if e == 0 {
				continue
			}
			last = max(last, e)
			lat = append(lat, float64(e-s)/1e6)
		}
		return lat, time.Duration(last - first)
	}

	next := make(chan int)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < cfg.HookConns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				post(i)
			}
		}()
	}
	for i := 0; i < h; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	answered := time.Since(t0)
	select {
	case <-burstDone:
	case <-time.After(30 * time.Second):
	}

	// Paced: request k starts at t1 + k/hookPace; late starts are counted.
	interval := time.Second / hookPace
	var late atomic.Int64
	t1 := time.Now()
	for k := 0; k < h; k++ {
		at := t1.Add(time.Duration(k) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		} else if d < -interval {
			late.Add(1)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			post(i)
		}(h + k)
	}
	offered := time.Since(t1)
	wg.Wait()
	select {
	case <-pacedDone:
	case <-time.After(30 * time.Second):
	}
	cancel()

	lat, span := phase(0)
	got := len(lat)
	rate := float64(got) / span.Seconds()
	p50, p99 := pctls(lat)
	plat, pspan := phase(h)
	pgot := len(plat)
	prate := float64(pgot) / pspan.Seconds()
	pp50, pp99 := pctls(plat)
	detail := fmt.Sprintf("burst (%d hooks, %d senders, answered in %.2f s): request → job/<jid>/new p50 %s, p99 %s; "+
		"paced at %s/s (%d hooks offered in %.2f s, %d started late, %s/s published): p50 %s, **p99 %s**; jobs published %d + %d, refused/failed %d",
		h, cfg.HookConns, answered.Seconds(), fmtMs(p50), fmtMs(p99),
		thousands(hookPace), h, offered.Seconds(), late.Load(), thousands(int64(prate)), fmtMs(pp50), fmtMs(pp99), got, pgot, bad.Load())
	if e := firstErr.Load(); e != nil {
		detail += fmt.Sprintf(" (first: %v)", e)
	}
	return Row{Scenario: "webhook → reactor", N: len(f.minions), Count: got + pgot, Want: 2 * h, Lost: 2*h - got - pgot,
		Values: []float64{rate, p50, p99, prate, pp50, pp99},
		Figure: fmt.Sprintf("%s hooks/s", thousands(int64(rate))), Detail: detail}, nil
}

// hookArg is the first argument of a test.echo job, -2 for anything else.
func hookArg(ev *pb.Event) int {
	d := ev.GetData().GetFields()
	if d["fun"].GetStringValue() != "test.echo" {
		return -2
	}
	args := d["arg"].GetListValue().GetValues()
	if len(args) != 1 {
		return -2
	}
	if _, ok := args[0].GetKind().(*structpb.Value_NumberValue); !ok {
		return -2
	}
	return int(args[0].GetNumberValue())
}

func mineGet(ctx context.Context, cfg *Config, mp *masterProc, f *fleet) (Row, error) {
	n := len(f.minions)
	var times []float64
	fewest := n
	for i := 0; i < cfg.Rounds; i++ {
		c, d, err := mineCount(ctx, mp)
		if err != nil {
			return Row{}, err
		}
		fewest = min(fewest, c)
		times = append(times, ms(d))
	}
	p50, p99 := pctls(times)
	return Row{Scenario: "mine.get grain target", N: n, Count: fewest, Want: n, Values: times,
		Figure: fmt.Sprintf("p50 %s", fmtMs(p50)),
		Detail: fmt.Sprintf("`mine.get roles:bench network.ip_addrs tgt_type=grain` via the control socket, p99 %s over %d calls, %d minions in each answer", fmtMs(p99), cfg.Rounds, fewest)}, nil
}

// minionIdle runs a real brine-minion process against the master and
// samples its RSS and CPU time while it sits connected and idle.
func minionIdle(ctx context.Context, cfg *Config, mp *masterProc, dir string) (Row, error) {
	const id = "bench-real"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Row{}, err
	}
	mc := map[string]any{"id": id, "master": mp.minionAddr, "master_finger": mp.finger, "data_dir": dir,
		"autosign_token": mp.token, "hosts_file": filepath.Join(dir, "hosts"), "log_level": "warning"}
	b, _ := yaml.Marshal(mc)
	cfgPath := filepath.Join(dir, "minion.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return Row{}, err
	}
	logf, err := os.Create(filepath.Join(dir, "minion.log"))
	if err != nil {
		return Row{}, err
	}
	defer logf.Close()
	cmd := exec.Command(cfg.MinionBin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return Row{}, fmt.Errorf("start %s: %w", cfg.MinionBin, err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		o, err := publish(ctx, mp, id, "list", "test.ping", nil, nil, 2*time.Second)
		if err == nil && o.ok == 1 {
			break
		}
		if time.Now().After(deadline) {
			return Row{}, fmt.Errorf("brine-minion %s did not answer test.ping within 60 s; see %s", id, filepath.Join(dir, "minion.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the first mine publish and start-up garbage
	pid := cmd.Process.Pid
	c0, err := cpuTicks(pid)
	if err != nil {
		return Row{}, err
	}
	t0 := time.Now()
	var maxRSS int64
	for time.Since(t0) < cfg.IdleFor {
		if r, err := rssKiB(pid); err == nil && r > maxRSS {
			maxRSS = r
		}
		time.Sleep(min(time.Second, cfg.IdleFor/4))
	}
	c1, err := cpuTicks(pid)
	if err != nil {
		return Row{}, err
	}
	el := time.Since(t0)
	cpuPct := float64(c1-c0) / clockTicks / el.Seconds() * 100
	return Row{Scenario: "brine-minion idle", N: 1, Count: 1, Want: 1, Values: []float64{float64(maxRSS), cpuPct},
		Figure: fmt.Sprintf("%.1f MiB RSS", float64(maxRSS)/1024),
		Detail: fmt.Sprintf("real process, connected and idle for %.0f s: CPU %.2f%% of one core (%d ticks)", el.Seconds(), cpuPct, c1-c0)}, nil
}
