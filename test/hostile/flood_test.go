package hostile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/brine-cm/brine/proto/brinev1"
	"github.com/brine-cm/brine/test/binaries"
)

// floodPlan sizes the attack. "full" is CVE-2023-20897's row in
// docs/SECURITY.md; "reduced" runs in make test in seconds.
type floodPlan struct {
	unknownConns int // connections with unknown keys, held open
	pendingReqs  int // pending-key requests: handshake, then hang up
	halfOpen     int // TCP connections that start a TLS handshake and stall
	slowloris    int // webhook connections sending headers a byte at a time
	oversized    int // unauthenticated 8 MiB Hellos
	maxPending   int // the master's max_pending_keys
	workers      int // attacker concurrency
	rssLimitMiB  int64
	// maxP99 bounds test.ping's p99 during the flood. The full flood is
	// held to the advisory's 1 s; the reduced one runs in `make test`
	// beside every other package under -race on 2 cores, where it is a
	// "the master never stalls" check (measured 0.4-0.8 s there).
	maxP99 time.Duration
}

var floodPlans = map[string]floodPlan{
	"reduced": {unknownConns: 150, pendingReqs: 400, halfOpen: 150, slowloris: 100, oversized: 6, maxPending: 100, workers: 8, rssLimitMiB: 400, maxP99: 2 * time.Second},
	"full":    {unknownConns: 2000, pendingReqs: 10000, halfOpen: 2000, slowloris: 1000, oversized: 50, maxPending: 1000, workers: 64, rssLimitMiB: 1024, maxP99: time.Second},
}

// TestFloodKeepsAcceptedMinionsAnswering (CVE-2023-20897) floods a real
// master from every side at once while three accepted minions are pinged
// in a loop: connections with unknown keys held open, pending-key
// requests well past max_pending_keys, half-open TLS handshakes, a
// slowloris on the webhook, and oversized unauthenticated messages. The
// pings must all come back, their p99 under 1 s; the pending list stops
// at its cap and the overflow is counted; stalled connections are cut by
// the master's timeouts; the master's peak RSS stays under a bound.
func TestFloodKeepsAcceptedMinionsAnswering(t *testing.T) {
	plan, ok := floodPlans[*floodSize]
	if !ok {
		t.Fatalf("-flood=%q: want reduced or full", *floodSize)
	}
	hookPort := binaries.FreePort(t)
	pm := startPortMaster(t, fmt.Sprintf("max_pending_keys: %d\nwebhook:\n  listen: 127.0.0.1:%d\n  allow_unauthenticated: true\n", plan.maxPending, hookPort))
	hookAddr := fmt.Sprintf("127.0.0.1:%d", hookPort)
	ids := []string{"m1", "m2", "m3"}
	for _, id := range ids {
		pm.startMinion(id)
	}
	pm.acceptMinions(ids...)
	rssBefore := procStatus(pm.pid, "VmRSS")

	// The pinger: test.ping to the accepted minions, back to back.
	var (
		pingMu     sync.Mutex
		latencies  []time.Duration
		incomplete int
	)
	ping := func() {
		start := time.Now()
		_, rets := pm.publishQuiet("m*", "test.ping", 5*time.Second)
		d := time.Since(start)
		pingMu.Lock()
		latencies = append(latencies, d)
		if len(rets) != len(ids) {
			incomplete++
		}
		pingMu.Unlock()
	}
	for range 5 {
		ping() // warm: the first job pays for connection setup
	}
	pingMu.Lock()
	latencies, incomplete = nil, 0
	pingMu.Unlock()

	floodCtx, endFlood := context.WithCancel(context.Background())
	defer endFlood()
	stopPing := make(chan struct{})
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		for {
			select {
			case <-stopPing:
				return
			default:
			}
			ping()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var peakRSS atomic.Int64
	go func() {
		for floodCtx.Err() == nil {
			if v := procStatus(pm.pid, "VmRSS"); v > peakRSS.Load() {
				peakRSS.Store(v)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	var (
		tried                      atomic.Int64
		pending, capped, otherErrs atomic.Int64
		oversizedCut               atomic.Int64
		halfOpenCut, slowCut       atomic.Int64
		halfOpenMax, slowMax       atomic.Int64
		dialErrs, lost             atomic.Int64
	)
	var attackers sync.WaitGroup
	sem := make(chan struct{}, plan.workers)
	enrol := func(i int, hold bool, prefix string) {
		defer attackers.Done()
		sem <- struct{}{}
		rc := dialRaw(t, pm.addr)
		me := newIdentity(fmt.Sprintf("%s-%d-%s", prefix, i, randSuffix()))
		ctx, cancel := context.WithTimeout(floodCtx, 30*time.Second)
		_, w, err := rc.handshake(ctx, me.id, me.pub, me.priv)
		<-sem
		tried.Add(1)
		switch {
		case err == nil && w.GetKeyState() == "pending":
			pending.Add(1)
		case codeOf(err) == codes.ResourceExhausted:
			capped.Add(1)
		case codeOf(err) == codes.Unavailable || codeOf(err) == codes.DeadlineExceeded:
			// The attacker's own connection gave out (its dial or TLS
			// on a machine this busy): neither pending nor refused.
			lost.Add(1)
		default:
			otherErrs.Add(1)
			t.Logf("unexpected outcome for %s: %v %v", me.id, w, err)
		}
		if hold && err == nil {
			<-floodCtx.Done()
		}
		cancel()
		rc.cc.Close()
	}
	for i := range plan.unknownConns {
		attackers.Add(1)
		go enrol(i, true, "flood-unknown")
	}
	for i := range plan.pendingReqs {
		attackers.Add(1)
		go enrol(i, false, "flood-pending")
	}
	// Half-open TLS: a record header announcing a ClientHello that never
	// comes. The master must hang up (its TLS handshake timeout).
	for range plan.halfOpen {
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			start := time.Now()
			c, err := net.DialTimeout("tcp", pm.addr, 5*time.Second)
			if err != nil {
				dialErrs.Add(1)
				return
			}
			defer c.Close()
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00})
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.Copy(io.Discard, c); cutByPeer(err) {
				halfOpenCut.Add(1)
				setMax(&halfOpenMax, int64(time.Since(start)/time.Millisecond))
			}
		}()
	}
	// Slowloris on the webhook: one header line a second, never the end.
	for range plan.slowloris {
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			start := time.Now()
			c, err := net.DialTimeout("tcp", hookAddr, 5*time.Second)
			if err != nil {
				dialErrs.Add(1)
				return
			}
			defer c.Close()
			closed := make(chan struct{})
			go func() {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.Copy(io.Discard, c); cutByPeer(err) {
					slowCut.Add(1)
					setMax(&slowMax, int64(time.Since(start)/time.Millisecond))
				}
				close(closed)
			}()
			c.Write([]byte("POST /hook/slow HTTP/1.1\r\nHost: brine\r\n"))
			for i := 0; ; i++ {
				select {
				case <-closed:
					return
				case <-time.After(time.Second):
				}
				if _, err := fmt.Fprintf(c, "X-Slow-%d: a\r\n", i); err != nil {
					<-closed
					return
				}
			}
		}()
	}
	// Oversized: an 8 MiB Hello from nobody.
	big := strings.Repeat("x", 8<<20)
	for range plan.oversized {
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rc := dialRaw(t, pm.addr)
			defer rc.cc.Close()
			g, _ := structpb.NewStruct(map[string]any{"junk": big})
			me := newIdentity("oversized")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			st, err := pb.NewMinionLinkClient(rc.cc).Connect(ctx)
			if err == nil {
				st.Send(&pb.MinionMessage{Msg: &pb.MinionMessage_Hello{Hello: &pb.Hello{Id: me.id, PublicKey: me.pub, Grains: g}}})
				_, err = st.Recv()
			}
			if err != nil && codeOf(err) != codes.DeadlineExceeded && codeOf(err) != codes.Canceled {
				oversizedCut.Add(1)
			}
		}()
	}
	// A legitimate webhook call in the middle of it.
	time.Sleep(time.Second)
	hookStart := time.Now()
	resp, err := http.Post("http://"+hookAddr+"/hook/deploy", "application/json", bytes.NewReader([]byte(`{"ref":"main"}`)))
	hookLatency := time.Since(hookStart)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("webhook during the flood: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	floodStart := time.Now()
	attackersDone := make(chan struct{})
	go func() {
		// Held connections end when the flood does: once every other
		// attacker finished.
		for tried.Load() < int64(plan.unknownConns+plan.pendingReqs) {
			time.Sleep(50 * time.Millisecond)
		}
		endFlood()
	}()
	go func() { attackers.Wait(); close(attackersDone) }()
	select {
	case <-attackersDone:
	case <-time.After(10 * time.Minute):
		t.Fatal("flood did not finish in 10 minutes")
	}
	floodDur := time.Since(floodStart)
	close(stopPing)
	<-pingDone
	endFlood()
	hwm := procStatus(pm.pid, "VmHWM")
	if v := peakRSS.Load(); v > hwm {
		hwm = v
	}

	pingMu.Lock()
	lat := append([]time.Duration(nil), latencies...)
	inc := incomplete
	pingMu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) < 5 {
		t.Fatalf("only %d pings during the flood", len(lat))
	}
	p50, p99, pmax := lat[len(lat)/2], lat[(len(lat)*99)/100], lat[len(lat)-1]
	keys := pm.keys()
	capMetric := pm.metric("brine_minion_refused_total", `reason="pending_cap"`)
	budgetMetric := pm.metric("brine_minion_refused_total", `reason="preauth_budget"`)
	t.Logf("flood=%s: %d connections with unknown keys (held) + %d pending-key requests: %d pending, %d refused at the cap (metric %v), %d attacker connections lost, %d other; "+
		"%d half-open TLS (%d cut by the master, slowest %d ms); %d slowloris (%d cut, slowest %d ms); %d oversized Hellos (%d cut, metric %v); "+
		"webhook answered in %s; flood lasted %s; %d pings during it: p50 %s p99 %s max %s, %d incomplete; master RSS %d MiB before, peak %d MiB",
		*floodSize, plan.unknownConns, plan.pendingReqs, pending.Load(), capped.Load(), capMetric, lost.Load(), otherErrs.Load(),
		plan.halfOpen, halfOpenCut.Load(), halfOpenMax.Load(), plan.slowloris, slowCut.Load(), slowMax.Load(), plan.oversized, oversizedCut.Load(), budgetMetric,
		hookLatency.Round(time.Millisecond), floodDur.Round(time.Millisecond), len(lat), p50.Round(time.Millisecond), p99.Round(time.Millisecond), pmax.Round(time.Millisecond), inc,
		rssBefore/1024, hwm/1024)

	if dialErrs.Load() != 0 {
		t.Errorf("%d attacker connections could not even be dialled", dialErrs.Load())
	}
	if inc != 0 {
		t.Errorf("%d pings missed a minion's return during the flood", inc)
	}
	if p99 > plan.maxP99 {
		t.Errorf("test.ping p99 during the flood: %s, want under %s", p99, plan.maxP99)
	}
	total := int64(plan.unknownConns + plan.pendingReqs)
	if len(keys["pending"]) != plan.maxPending || pending.Load() > int64(plan.maxPending) || pending.Load()+lost.Load() < int64(plan.maxPending) {
		t.Errorf("pending keys: %d listed, %d welcomed as pending (%d attacker connections lost); want the cap %d", len(keys["pending"]), pending.Load(), lost.Load(), plan.maxPending)
	}
	if capped.Load() < total-int64(plan.maxPending)-lost.Load() || capMetric != float64(capped.Load()) {
		t.Errorf("refused at the cap: %d (metric %v), want %d less the %d lost", capped.Load(), capMetric, total-int64(plan.maxPending), lost.Load())
	}
	if lost.Load() > total/20 {
		t.Errorf("%d of %d attacker connections lost: the figures are not the master's", lost.Load(), total)
	}
	if otherErrs.Load() != 0 {
		t.Errorf("%d enrolments ended otherwise", otherErrs.Load())
	}
	if halfOpenCut.Load() != int64(plan.halfOpen) || halfOpenMax.Load() > 14000 {
		t.Errorf("half-open TLS: %d of %d cut by the master, slowest after %d ms (timeout 10 s)", halfOpenCut.Load(), plan.halfOpen, halfOpenMax.Load())
	}
	if slowCut.Load() != int64(plan.slowloris) || slowMax.Load() > 9000 {
		t.Errorf("slowloris: %d of %d cut by the webhook, slowest after %d ms (header timeout 5 s)", slowCut.Load(), plan.slowloris, slowMax.Load())
	}
	if oversizedCut.Load() != int64(plan.oversized) || budgetMetric < float64(plan.oversized) {
		t.Errorf("oversized Hellos: %d of %d cut, %v counted", oversizedCut.Load(), plan.oversized, budgetMetric)
	}
	if hookLatency > plan.maxP99 {
		t.Errorf("webhook during the flood answered in %s", hookLatency)
	}
	if hwm/1024 > plan.rssLimitMiB {
		t.Errorf("master peak RSS %d MiB, bound %d MiB", hwm/1024, plan.rssLimitMiB)
	}
	// After the flood the accepted minions are still there and answer.
	if _, rets := pm.publishQuiet("m*", "test.ping", 5*time.Second); len(rets) != len(ids) {
		t.Errorf("after the flood: %d returns", len(rets))
	}
}

// cutByPeer: the read ended because the other side closed or reset the
// connection, not because our own deadline passed.
func cutByPeer(err error) bool {
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func setMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}
