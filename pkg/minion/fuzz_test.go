package minion

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/exec"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// FuzzJobPayload decodes arbitrary bytes as the Job message a master sends
// and runs it through the minion's real job path: argument decoding, the
// compiled-chunk decoding of state.apply, and return encoding. Every job
// must produce exactly one return, for its own jid, under the minion's own
// id, and never panic.
//
// state.apply here only ever sees host.* chunks, in test mode, against a
// scratch hosts file: a fuzzer must not be able to run commands on the
// machine fuzzing it (cmd.run's unless/onlyif run even in test mode).
func FuzzJobPayload(f *testing.F) {
	seed := func(j *pb.Job) {
		b, err := proto.Marshal(j)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	args := func(v ...any) *structpb.ListValue { l, _ := structpb.NewList(v); return l }
	kw := func(m map[string]any) *structpb.Struct { s, _ := structpb.NewStruct(m); return s }
	seed(&pb.Job{Jid: "20261125160000000001", Fun: "test.ping"})
	seed(&pb.Job{Jid: "20261125160000000002", Fun: "test.echo", Args: args("{{ 7*7 }}", 1.5, nil, true)})
	seed(&pb.Job{Jid: "j3", Fun: "state.apply", Kwargs: kw(map[string]any{"__chunks__": []any{
		map[string]any{"id": "db", "name": "db.internal", "state": "host", "fun": "present", "order": 1.0,
			"args": map[string]any{"ip": []any{"10.0.0.5"}}},
		map[string]any{"id": "x", "state": "host", "fun": "absent", "require": []any{map[string]any{"state": "host", "id": "db"}}},
	}})})
	seed(&pb.Job{Jid: "j4", Fun: "state.apply", Kwargs: kw(map[string]any{"__chunks__": "not a list"})})
	seed(&pb.Job{Jid: "j5", Fun: "no.such", TimeoutMs: -5})
	seed(&pb.Job{Jid: "j6", Fun: "state.apply", Kwargs: kw(map[string]any{"__chunks__": []any{map[string]any{"state": 7.0}}})})
	f.Add([]byte{0x12, 0x80})

	dir := f.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg := config.DefaultMinion()
	cfg.ID = "fuzz-minion"
	cfg.Master = []string{"127.0.0.1:1"}
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HostsFile = hosts
	cfg.JobTimeout = 5
	m, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	reg := exec.NewRegistry()
	reg.Register("test.echo", func(_ context.Context, _ *exec.Env, a []any, k map[string]any) (any, error) {
		return map[string]any{"args": a, "kwargs": k}, nil
	}, exec.Doc{Summary: "fuzz: echo"})
	reg.Register("state.apply", func(ctx context.Context, env *exec.Env, a []any, k map[string]any) (any, error) {
		k["__test__"] = true
		if l, ok := k["__chunks__"].([]any); ok {
			keep := []any{}
			for _, c := range l {
				if cm, ok := c.(map[string]any); ok && cm["state"] == "host" {
					keep = append(keep, c)
				}
			}
			k["__chunks__"] = keep
		}
		return m.stateRun(ctx, env, a, k)
	}, exec.Doc{Summary: "fuzz: host states in test mode"})
	m.exec = reg

	f.Fuzz(func(t *testing.T, raw []byte) {
		var j pb.Job
		if err := proto.Unmarshal(raw, &j); err != nil {
			return
		}
		m.runJob(context.Background(), &j)
		m.mu.Lock()
		out := m.outbox
		m.outbox = nil
		m.mu.Unlock()
		if len(out) != 1 {
			t.Fatalf("job %q gave %d returns, want 1", j.GetJid(), len(out))
		}
		r := out[0].GetRet()
		if r.GetJid() != j.GetJid() || r.GetId() != cfg.ID {
			t.Fatalf("return for jid %q id %q, want %q %q", r.GetJid(), r.GetId(), j.GetJid(), cfg.ID)
		}
		if b, _ := os.ReadFile(hosts); string(b) != "127.0.0.1 localhost\n" {
			t.Fatalf("test-mode job changed the hosts file: %q", b)
		}
	})
}
