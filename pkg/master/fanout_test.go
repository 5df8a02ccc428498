package master_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/master"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

const fanoutMinions = 24

func startFleet(t *testing.T) (*testMaster, []string) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	tm := startMaster(t, filepath.Join(dir, "master"), port, func(c *config.Master) { c.AutoAccept = true })
	var ids []string
	var mins []*testMinion
	for i := range fanoutMinions {
		id := fmt.Sprintf("f%02d", i)
		ids = append(ids, id)
		mins = append(mins, startMinion(t, id, port, filepath.Join(dir, id), nil, nil))
	}
	for _, mn := range mins {
		waitFor(t, mn.ID()+" connected", 20*time.Second, mn.Connected)
	}
	return tm, ids
}

// TestFanOutSharedJobAndBatchedReturns sends one job to many real minions
// (the master encodes one shared message for all of them) and reads the
// returns over the control socket in both forms.
func TestFanOutSharedJobAndBatchedReturns(t *testing.T) {
	tm, ids := startFleet(t)
	args := []any{"first", 2.0, map[string]any{"nested": []any{true, nil}}}
	kwargs := map[string]any{"key": "value", "n": 3.0}
	wantRet := map[string]any{"args": args, "kwargs": kwargs}
	a, _ := wire.List(args)
	k, _ := wire.Struct(kwargs)
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch_returns=%v", batch), func(t *testing.T) {
			st, err := tm.ctl.Publish(context.Background(), &pb.PublishRequest{Target: "f*", Fun: "test.arg", Args: a, Kwargs: k,
				TimeoutMs: 20000, BatchReturns: batch})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]*pb.Return{}
			singles, batches := 0, 0
			var done *pb.JobDone
			for {
				ev, err := st.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				var rets []*pb.Return
				switch x := ev.Ev.(type) {
				case *pb.PublishEvent_Ret:
					singles++
					rets = []*pb.Return{x.Ret}
				case *pb.PublishEvent_Rets:
					batches++
					rets = x.Rets.GetRets()
				case *pb.PublishEvent_Done:
					done = x.Done
				}
				for _, r := range rets {
					if _, dup := got[r.GetId()]; dup {
						t.Errorf("return from %s twice", r.GetId())
					}
					got[r.GetId()] = r
				}
			}
			if batch && singles != 0 {
				t.Errorf("batched publish sent %d single returns", singles)
			}
			if !batch && batches != 0 {
				t.Errorf("a client that did not ask for batches got %d", batches)
			}
			if done == nil || len(done.GetMissing()) != 0 {
				t.Fatalf("done = %v", done)
			}
			if len(got) != len(ids) {
				t.Fatalf("%d returns, want %d", len(got), len(ids))
			}
			for _, id := range ids {
				r := got[id]
				if r == nil || !r.GetSuccess() {
					t.Fatalf("%s: return %v", id, r)
				}
				// Every minion received the shared job intact.
				ret := wire.Any(r.GetRet()).(map[string]any)
				delete(ret["kwargs"].(map[string]any), "__jid__")
				if !reflect.DeepEqual(ret, wantRet) {
					t.Errorf("%s got %v, want %v", id, ret, wantRet)
				}
			}
		})
	}
}

// TestPublishBatchesWhatIsQueued: with BatchReturns, returns that arrive
// while the caller is busy with the previous event come in one batch.
func TestPublishBatchesWhatIsQueued(t *testing.T) {
	tm, ids := startFleet(t)
	sub := tm.Bus().Subscribe("job/*/ret/*", 1024)
	defer sub.Close()
	var sizes []int
	total := 0
	res, err := tm.Publish(context.Background(), master.PublishSpec{Target: "*", Fun: "test.ping", Timeout: 20 * time.Second, BatchReturns: true},
		func(ev *pb.PublishEvent) {
			if _, ok := ev.Ev.(*pb.PublishEvent_Ret); ok {
				t.Error("single return with BatchReturns set")
			}
			b, ok := ev.Ev.(*pb.PublishEvent_Rets)
			if !ok {
				return
			}
			sizes = append(sizes, len(b.Rets.GetRets()))
			total += len(b.Rets.GetRets())
			if len(sizes) > 1 {
				return
			}
			// Hold the first batch until every return has been recorded
			// (each is on the bus right after it is queued for Publish).
			seen := 0
			deadline := time.After(20 * time.Second)
			for seen < len(ids) {
				select {
				case <-sub.C:
					seen++
				case <-deadline:
					t.Errorf("only %d returns on the bus", seen)
					return
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Returns) != len(ids) || total != len(ids) {
		t.Fatalf("returns %d, in batches %d, want %d", len(res.Returns), total, len(ids))
	}
	if len(sizes) > 2 {
		t.Errorf("batch sizes %v: what was queued behind the first batch was not sent as one", sizes)
	}
}

// TestEventBatches: the control socket's batched event stream delivers
// every event of a burst, in order.
func TestEventBatches(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, filepath.Join(dir, "master"), freePort(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := tm.ctl.EventBatches(ctx, &pb.EventsRequest{TagGlob: "burst/*"})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription exists once a probe event comes through; the
	// server subscribes asynchronously, so probe until one does.
	probing := make(chan struct{})
	go func() {
		for {
			_ = tm.Bus().Publish(ctx, "burst/probe", nil)
			select {
			case <-probing:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	first, err := st.Recv()
	close(probing)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetEvents()[0].GetTag() != "burst/probe" {
		t.Fatalf("first event %v", first)
	}
	const n = 3000
	for i := range n {
		if err := tm.Bus().Publish(ctx, fmt.Sprintf("burst/%d", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	next, msgs := 0, 0
	for next < n {
		b, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		msgs++
		for _, ev := range b.GetEvents() {
			if ev.GetTag() == "burst/probe" {
				continue
			}
			if want := fmt.Sprintf("burst/%d", next); ev.GetTag() != want {
				t.Fatalf("event %q, want %q", ev.GetTag(), want)
			}
			if i := ev.GetData().AsMap()["i"]; i != float64(next) {
				t.Fatalf("event %d data %v", next, i)
			}
			next++
		}
	}
	if msgs >= n {
		t.Errorf("%d messages for %d events: nothing was batched", msgs, n)
	}
	t.Logf("%d events in %d messages", n, msgs)
}

// TestEventBatchesBounded: a batch stays under its byte bound unless it
// carries one event alone, so large events never add up past what a
// client accepts in one message.
func TestEventBatchesBounded(t *testing.T) {
	dir := t.TempDir()
	tm := startMaster(t, filepath.Join(dir, "master"), freePort(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := tm.ctl.EventBatches(ctx, &pb.EventsRequest{TagGlob: "big/*"})
	if err != nil {
		t.Fatal(err)
	}
	probing := make(chan struct{})
	go func() {
		for {
			_ = tm.Bus().Publish(ctx, "big/probe", nil)
			select {
			case <-probing:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	_, err = st.Recv()
	close(probing)
	if err != nil {
		t.Fatal(err)
	}
	blob := strings.Repeat("x", 40<<10) // over the 32 KiB bound
	const n = 6
	for i := range n {
		if err := tm.Bus().Publish(ctx, fmt.Sprintf("big/%d", i), map[string]any{"blob": blob}); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for got < n {
		b, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		big := 0
		for _, ev := range b.GetEvents() {
			if ev.GetTag() != "big/probe" {
				big++
			}
		}
		if size := proto.Size(b); big > 0 && len(b.GetEvents()) > 1 {
			t.Errorf("a %d-byte event shares its batch (%d events, %d bytes)", len(blob), len(b.GetEvents()), size)
		}
		got += big
	}
}
