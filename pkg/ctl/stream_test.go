package ctl

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/proto/brinev1"
)

// batchScript is script's Publish with the returns grouped into
// ReturnBatch messages of the given sizes, as a batching master sends
// them (a size of 0 sends that return as an old-style single Ret).
func batchScript(targeted []string, rets []*brinev1.Return, sizes []int) func(*brinev1.PublishRequest, grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
	return func(req *brinev1.PublishRequest, s grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
		const jid = "20260101120000000001"
		if err := s.Send(&brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Started{Started: &brinev1.JobStarted{Jid: jid, Targeted: targeted}}}); err != nil {
			return err
		}
		i := 0
		for _, n := range sizes {
			var ev *brinev1.PublishEvent
			if n == 0 {
				r := proto.Clone(rets[i]).(*brinev1.Return)
				r.Jid, r.Fun = jid, req.GetFun()
				ev = &brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Ret{Ret: r}}
				i++
			} else {
				b := &brinev1.ReturnBatch{}
				for _, r := range rets[i : i+n] {
					r = proto.Clone(r).(*brinev1.Return)
					r.Jid, r.Fun = jid, req.GetFun()
					b.Rets = append(b.Rets, r)
				}
				ev = &brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Rets{Rets: b}}
				i += n
			}
			if err := s.Send(ev); err != nil {
				return err
			}
		}
		return s.Send(&brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Done{Done: &brinev1.JobDone{Jid: jid}}})
	}
}

// TestRunBatchedReturns: brinectl asks for batched returns and prints the
// same thing whether the master batches them, mixes both forms, or is an
// older master sending one return a message.
func TestRunBatchedReturns(t *testing.T) {
	targeted := []string{"web1", "web2", "web3", "web4"}
	rets := []*brinev1.Return{ret("web3", true, true), ret("web1", "a", true), ret("web4", 2.0, true), ret("web2", false, false)}
	fm := &fakeMaster{}
	sock := startMaster(t, fm)
	tests := []struct {
		name  string
		sizes []int
	}{
		{"older master, one return a message", []int{0, 0, 0, 0}},
		{"one batch", []int{4}},
		{"batches", []int{1, 3}},
		{"mixed", []int{2, 0, 1}},
	}
	var first string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm.set(func(f *fakeMaster) { f.publish = batchScript(targeted, rets, tt.sizes) })
			r := cli(t, nil, "run", "--out", "json", "*", "test.ping", "--socket", sock)
			if r.code != 1 { // web2 returned failure
				t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
			}
			if !fm.lastPublish(t).GetBatchReturns() {
				t.Error("brinectl did not ask for batched returns")
			}
			for _, id := range targeted {
				if !strings.Contains(r.stdout, `"`+id+`"`) {
					t.Errorf("%s missing from output %q", id, r.stdout)
				}
			}
			if first == "" {
				first = r.stdout
			} else if r.stdout != first {
				t.Errorf("output differs from the unbatched one:\n%s\nwant\n%s", r.stdout, first)
			}
		})
	}
}

// batchingMaster implements EventBatches, sending its canned events in
// batches of batchSize.
type batchingMaster struct {
	fakeMaster
	batchSize int
}

func (f *batchingMaster) EventBatches(req *brinev1.EventsRequest, s grpc.ServerStreamingServer[brinev1.EventBatch]) error {
	f.mu.Lock()
	f.evReqs = append(f.evReqs, proto.Clone(req).(*brinev1.EventsRequest))
	evs := f.events
	f.mu.Unlock()
	b := &brinev1.EventBatch{}
	for _, ev := range evs {
		if !event.MatchTag(req.GetTagGlob(), ev.GetTag()) {
			continue
		}
		b.Events = append(b.Events, ev)
		if len(b.Events) == f.batchSize {
			if err := s.Send(b); err != nil {
				return err
			}
			b = &brinev1.EventBatch{}
		}
	}
	if len(b.Events) > 0 {
		if err := s.Send(b); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

// Events must not be used when EventBatches is there.
func (f *batchingMaster) Events(*brinev1.EventsRequest, grpc.ServerStreamingServer[brinev1.Event]) error {
	return context.Canceled
}

// TestEventsBatchedAndFallback: brinectl events prints every event in
// order from a master sending batches, and from an older master without
// EventBatches (fakeMaster) by falling back to Events.
func TestEventsBatchedAndFallback(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var evs []*brinev1.Event
	for i := range 7 {
		evs = append(evs, mkEvent(t, "custom/n/"+string(rune('a'+i)), map[string]any{"n": float64(i)}, at))
	}
	tests := []struct {
		name string
		srv  brinev1.ControlServer
	}{
		{"older master", &fakeMaster{events: evs}},
		{"batches of 3", &batchingMaster{fakeMaster: fakeMaster{events: evs}, batchSize: 3}},
		{"one batch", &batchingMaster{fakeMaster: fakeMaster{events: evs}, batchSize: 100}},
	}
	var want string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := startMaster(t, tt.srv)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var out, errb syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- Main(ctx, []string{"events", "--tag", "custom/*", "--socket", sock}, Env{Stdout: &out, Stderr: &errb})
			}()
			waitFor(t, "seven events", func() bool { return strings.Count(out.String(), "\n") >= 7 })
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("exit %d; stderr %q", code, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			for i, l := range lines {
				if tag := "custom/n/" + string(rune('a'+i)); !strings.Contains(l, `"`+tag+`"`) {
					t.Errorf("line %d = %s, want tag %s (events out of order or lost)", i, l, tag)
				}
			}
			if want == "" {
				want = out.String()
			} else if out.String() != want {
				t.Errorf("output differs from the older master's:\n%s\nwant\n%s", out.String(), want)
			}
		})
	}
}
