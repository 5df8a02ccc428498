package ctl

// The Control server here is a canned stand-in so brinectl's requests,
// rendering and exit statuses can be checked precisely over a real gRPC
// connection on a real unix socket. The real brine-master is exercised
// end-to-end with brinectl by the system tests elsewhere.

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/proto/brinev1"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestMain lets tests run this test binary as the brinectl process, to
// check real signal handling.
func TestMain(m *testing.M) {
	if os.Getenv("BRINECTL_TEST_MAIN") == "1" {
		os.Exit(Execute())
	}
	flag.Parse()
	os.Exit(m.Run())
}

type fakeMaster struct {
	brinev1.UnimplementedControlServer

	mu      sync.Mutex
	pubs    []*brinev1.PublishRequest
	runs    []*brinev1.RunnerRequest
	evReqs  []*brinev1.EventsRequest
	publish func(*brinev1.PublishRequest, grpc.ServerStreamingServer[brinev1.PublishEvent]) error
	runner  func(*brinev1.RunnerRequest) (any, error)
	events  []*brinev1.Event
}

func (f *fakeMaster) Publish(req *brinev1.PublishRequest, s grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
	f.mu.Lock()
	f.pubs = append(f.pubs, proto.Clone(req).(*brinev1.PublishRequest))
	fn := f.publish
	f.mu.Unlock()
	if fn == nil {
		fn = script([]string{"web1"}, nil, []*brinev1.Return{ret("web1", true, true)}, nil)
	}
	return fn(req, s)
}

func (f *fakeMaster) Runner(_ context.Context, req *brinev1.RunnerRequest) (*brinev1.RunnerReply, error) {
	f.mu.Lock()
	f.runs = append(f.runs, proto.Clone(req).(*brinev1.RunnerRequest))
	fn := f.runner
	f.mu.Unlock()
	var v any = true
	if fn != nil {
		var err error
		if v, err = fn(req); err != nil {
			return nil, err
		}
	}
	val, err := structpb.NewValue(v)
	if err != nil {
		return nil, err
	}
	return &brinev1.RunnerReply{Ret: val}, nil
}

// Events sends the canned events whose tag matches the request (as the
// master's bus would), then holds the stream open until the client goes.
func (f *fakeMaster) Events(req *brinev1.EventsRequest, s grpc.ServerStreamingServer[brinev1.Event]) error {
	f.mu.Lock()
	f.evReqs = append(f.evReqs, proto.Clone(req).(*brinev1.EventsRequest))
	evs := f.events
	f.mu.Unlock()
	for _, ev := range evs {
		if !event.MatchTag(req.GetTagGlob(), ev.GetTag()) {
			continue
		}
		if err := s.Send(ev); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

func (f *fakeMaster) lastPublish(t *testing.T) *brinev1.PublishRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pubs) == 0 {
		t.Fatal("no Publish reached the master")
	}
	return f.pubs[len(f.pubs)-1]
}

func (f *fakeMaster) lastRunner(t *testing.T) *brinev1.RunnerRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.runs) == 0 {
		t.Fatal("no Runner call reached the master")
	}
	return f.runs[len(f.runs)-1]
}

func (f *fakeMaster) set(fn func(f *fakeMaster)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// startMaster serves f on a unix socket in a fresh temporary directory.
func startMaster(t *testing.T, f brinev1.ControlServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	brinev1.RegisterControlServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return sock
}

// script is a Publish behaviour: JobStarted, the returns, then JobDone
// (unless done is false, to imitate a stream that ends early).
func script(targeted, offline []string, rets []*brinev1.Return, missing []string, opts ...bool) func(*brinev1.PublishRequest, grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
	sendDone := len(opts) == 0 || opts[0]
	return func(req *brinev1.PublishRequest, s grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
		const jid = "20260101120000000001"
		if err := s.Send(&brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Started{Started: &brinev1.JobStarted{
			Jid: jid, Targeted: targeted, Offline: offline}}}); err != nil {
			return err
		}
		for _, r := range rets {
			r = proto.Clone(r).(*brinev1.Return)
			r.Jid, r.Fun = jid, req.GetFun()
			if err := s.Send(&brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Ret{Ret: r}}); err != nil {
				return err
			}
		}
		if !sendDone {
			return nil
		}
		return s.Send(&brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Done{Done: &brinev1.JobDone{
			Jid: jid, Missing: missing, Offline: offline}}})
	}
}

func ret(id string, v any, success bool) *brinev1.Return {
	val, err := structpb.NewValue(v)
	if err != nil {
		panic(err)
	}
	return &brinev1.Return{Id: id, Ret: val, Success: success}
}

// syncBuffer is a bytes.Buffer safe to read while the CLI writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs brinectl in-process with a pinned clock, UTC and no terminal.
func cli(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cliCtx(ctx, env, false, args...)
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func cliCtx(ctx context.Context, env map[string]string, terminal bool, args ...string) result {
	var out, errb syncBuffer
	code := Main(ctx, args, Env{
		Stdout:   &out,
		Stderr:   &errb,
		Getenv:   func(k string) string { return env[k] },
		Terminal: terminal,
		User:     "tester",
		Now:      func() time.Time { return testNow },
		Location: time.UTC,
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
