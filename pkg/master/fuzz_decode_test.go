package master

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/event"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// panicSpotter fails a fuzz input when the master logged that it recovered
// from a panic: handleMinionMessage survives panics on purpose, so without
// this the fuzzer would never see one.
type panicSpotter struct{ hits atomic.Int64 }

func (p *panicSpotter) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicSpotter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.hits.Add(1)
	}
	return nil
}
func (p *panicSpotter) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicSpotter) WithGroup(string) slog.Handler      { return p }

// FuzzMinionMessage feeds arbitrary bytes, decoded as the protobuf message
// an authenticated minion sends on its stream (returns, events, mine
// updates, master calls), to the master's real handlers. It must never
// panic, never publish a reserved tag on the minion's behalf, and never
// touch another minion's mine data.
func FuzzMinionMessage(f *testing.F) {
	seed := func(msg *pb.MinionMessage) {
		b, err := proto.Marshal(msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: "20261125160000000000", Id: "victim", Fun: "test.ping", Success: true}}})
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Ret{Ret: &pb.Return{Jid: "../../etc/passwd", Fun: "state.apply", Retcode: -1}}})
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Event{Event: &pb.Event{Tag: "salt/netapi/hook/deploy"}}})
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Event{Event: &pb.Event{Tag: "custom/{{ 7*7 }}"}}})
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Mine{Mine: &pb.MineUpdate{Removed: []string{"network.ip_addrs"}, Replace: true}}})
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Call{Call: &pb.MasterCall{CallId: "1", Fun: "mine.get"}}})
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Call{Call: &pb.MasterCall{CallId: "2", Fun: "pillar.items"}}})
	seed(&pb.MinionMessage{Msg: &pb.MinionMessage_Pong{Pong: &pb.Pong{Seq: 7}}})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	dir := f.TempDir()
	cfg := config.DefaultMaster()
	cfg.DataDir = dir
	cfg.Socket = filepath.Join(dir, "control.sock")
	cfg.FileRoots = map[string][]string{"base": {filepath.Join(dir, "states")}}
	cfg.PillarRoots = map[string][]string{"base": {filepath.Join(dir, "pillar")}}
	spot := &panicSpotter{}
	bus := event.NewLocal()
	m, err := New(cfg, Options{Logger: slog.New(spot), Bus: bus})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	victim := map[string]any{"network.ip_addrs": []any{"10.0.0.9"}}
	if _, err := m.mine.Put(ctx, "victim", victim, nil, true); err != nil {
		f.Fatal(err)
	}
	sub := bus.Subscribe("*", 4096)
	f.Cleanup(sub.Close)

	f.Fuzz(func(t *testing.T, raw []byte) {
		var msg pb.MinionMessage
		if err := proto.Unmarshal(raw, &msg); err != nil {
			return // gRPC would have refused the frame
		}
		c := &conn{id: "fuzzer", ctx: ctx, cancel: func() {},
			accepted: make(chan struct{}), outstanding: map[string]struct{}{}, grains: map[string]any{"id": "fuzzer"}}
		before := spot.hits.Load()
		if call := msg.GetCall(); call != nil {
			m.handleMinionCall(c, call) // synchronously, so its panics are seen here
		} else {
			m.handleMinionMessage(c, &msg)
		}
		if spot.hits.Load() != before {
			t.Fatalf("master recovered from a panic on %v", &msg)
		}
		got, err := m.mine.Get(ctx, []string{"victim"}, "network.ip_addrs")
		if err != nil || !reflect.DeepEqual(got["victim"], victim["network.ip_addrs"]) {
			t.Fatalf("victim's mine changed by another minion's message: %v %v", got, err)
		}
		for {
			select {
			case ev := <-sub.C:
				if id, _ := ev.Data["id"].(string); id != "" && id != "fuzzer" && !strings.HasPrefix(ev.Tag, "job/") {
					t.Fatalf("event %s claims id %q for a message from fuzzer", ev.Tag, id)
				}
				if msg.GetEvent() != nil && ev.Tag == msg.GetEvent().GetTag() && reserved(ev.Tag) {
					t.Fatalf("minion fired reserved tag %q", ev.Tag)
				}
				continue
			default:
			}
			break
		}
	})
}
