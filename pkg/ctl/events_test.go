package ctl

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/proto/brinev1"
)

func mkEvent(t *testing.T, tag string, data map[string]any, at time.Time) *brinev1.Event {
	t.Helper()
	s, err := structpb.NewStruct(data)
	if err != nil {
		t.Fatal(err)
	}
	return &brinev1.Event{Tag: tag, Data: s, TimeUnixNano: at.UnixNano()}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEventsStreaming(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	fm := &fakeMaster{events: []*brinev1.Event{
		mkEvent(t, "salt/job/1/ret/web1", map[string]any{"return": true, "id": "web1"}, at),
		mkEvent(t, "salt/auth", map[string]any{"id": "new1", "act": "pend"}, at),
		mkEvent(t, "salt/job/2/ret/web2", map[string]any{"return": "<b>&</b>"}, at.Add(time.Second)),
	}}
	sock := startMaster(t, fm)

	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"events", "--tag", "salt/job/*/ret/*", "--socket", sock}, Env{Stdout: &out, Stderr: &errb})
	}()
	waitFor(t, "two events", func() bool { return strings.Count(out.String(), "\n") >= 2 })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after interrupt, want 0; stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("events did not stop when its context was cancelled")
	}

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (the auth event does not match): %q", len(lines), out.String())
	}
	want := []map[string]any{
		{"tag": "salt/job/1/ret/web1", "data": map[string]any{"return": true, "id": "web1"}, "time": "2026-03-01T12:00:00.123456789Z"},
		{"tag": "salt/job/2/ret/web2", "data": map[string]any{"return": "<b>&</b>"}, "time": "2026-03-01T12:00:01.123456789Z"},
	}
	for i, l := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d is not JSON: %q", i, l)
		}
		if gotJSON, wantJSON := mustJSON(t, got), mustJSON(t, want[i]); gotJSON != wantJSON {
			t.Errorf("line %d = %s, want %s", i, gotJSON, wantJSON)
		}
	}
	if !strings.Contains(lines[1], "<b>&</b>") {
		t.Errorf("HTML characters escaped in %q", lines[1])
	}
	fm.mu.Lock()
	glob := fm.evReqs[0].GetTagGlob()
	fm.mu.Unlock()
	if glob != "salt/job/*/ret/*" {
		t.Errorf("tag glob sent = %q", glob)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEventsMasterGoesAway(t *testing.T) {
	sock := startMaster(t, &closingEvents{})
	r := cli(t, nil, "events", "--socket", sock)
	if r.code != 1 || !strings.Contains(r.stderr, "closed the event stream") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// closingEvents ends every event stream immediately, like a master that
// shuts down.
type closingEvents struct{ fakeMaster }

func (c *closingEvents) Events(*brinev1.EventsRequest, grpc.ServerStreamingServer[brinev1.Event]) error {
	return nil
}

// startProcess runs this test binary as brinectl (see TestMain).
func startProcess(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BRINECTL_TEST_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, bufio.NewReader(stdout), stderr
}

func TestEventsSIGINTExitsZero(t *testing.T) {
	fm := &fakeMaster{events: []*brinev1.Event{mkEvent(t, "salt/minion/web1/start", map[string]any{"id": "web1"}, time.Now())}}
	sock := startMaster(t, fm)
	cmd, stdout, stderr := startProcess(t, "events", "--socket", sock)
	line, err := stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading first event: %v (stderr %q)", err, stderr.String())
	}
	if !strings.Contains(line, `"tag":"salt/minion/web1/start"`) {
		t.Errorf("first line %q", line)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("brinectl events after SIGINT: %v (want exit 0); stderr %q", err, stderr.String())
	}
}

func TestRunSIGINTPointsAtJob(t *testing.T) {
	fm := &fakeMaster{}
	started := make(chan struct{})
	fm.publish = func(req *brinev1.PublishRequest, s grpc.ServerStreamingServer[brinev1.PublishEvent]) error {
		if err := s.Send(&brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Started{Started: &brinev1.JobStarted{
			Jid: "20260101000000000042", Targeted: []string{"web1"}}}}); err != nil {
			return err
		}
		close(started)
		<-s.Context().Done() // a long job: no return before the interrupt
		return nil
	}
	sock := startMaster(t, fm)
	cmd, _, stderr := startProcess(t, "run", "-v", "web1", "test.sleep", "600", "--socket", sock)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatalf("job never started; stderr %q", stderr.String())
	}
	// The JID reaches stderr only after the process received JobStarted.
	waitFor(t, "the jid on stderr", func() bool { return strings.Contains(stderr.String(), "Executing job with jid") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Errorf("exit = %v, want status 1", err)
	}
	if !strings.Contains(stderr.String(), "brinectl job show 20260101000000000042") {
		t.Errorf("stderr does not point at the job: %q", stderr.String())
	}
}
