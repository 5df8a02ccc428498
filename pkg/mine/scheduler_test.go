package mine

import (
	"context"
	"errors"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

type update struct {
	Data    map[string]any `json:"data"`
	Removed []string       `json:"removed"`
	Replace bool           `json:"replace"`
}

// recorder is a Publisher that keeps every update and can be told to fail.
type recorder struct {
	mu   sync.Mutex
	ups  []update
	fail error
	ch   chan update
}

func newRecorder() *recorder { return &recorder{ch: make(chan update, 100)} }

func (r *recorder) publish(_ context.Context, data map[string]any, removed []string, replace bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	u := update{Data: data, Removed: removed, Replace: replace}
	r.ups = append(r.ups, u)
	r.ch <- u
	return nil
}

func (r *recorder) setFail(err error) { r.mu.Lock(); r.fail = err; r.mu.Unlock() }

func (r *recorder) next(t *testing.T, within time.Duration) update {
	t.Helper()
	select {
	case u := <-r.ch:
		return u
	case <-time.After(within):
		t.Fatalf("no mine update within %v", within)
		return update{}
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustSpecs(t *testing.T, src string) []FuncSpec {
	t.Helper()
	specs, err := ParseFunctions(parseYAML(t, src))
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

// hostIPv4 asks iproute2, independently of Go's net package, for the
// host's non-loopback IPv4 addresses.
func hostIPv4(t *testing.T) []any {
	t.Helper()
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip -o -4 addr show: %v", err)
	}
	ips := []string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[2] != "inet" {
			continue
		}
		ip := strings.SplitN(f[3], "/", 2)[0]
		if !strings.HasPrefix(ip, "127.") {
			ips = append(ips, ip)
		}
	}
	sort.Strings(ips)
	res := make([]any, len(ips))
	for i, ip := range ips {
		res[i] = ip
	}
	return res
}

func TestRefreshFullWithRealRunner(t *testing.T) {
	ctx := context.Background()
	rec := newRecorder()
	specs := mustSpecs(t, `
network.ip_addrs: []
network.get_hostname: []
test.ping:
lb_ip:
  mine_function: network.ip_addrs
  include_loopback: true
  allow_tgt: 'lb*'
`)
	s := NewScheduler(specs, realRunner, rec.publish, 0, nil)
	if err := s.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	u := rec.next(t, time.Second)
	if !u.Replace || len(u.Removed) != 0 {
		t.Fatalf("full refresh: replace=%v removed=%v", u.Replace, u.Removed)
	}
	if got, want := keys(u.Data), []string{"lb_ip", "network.get_hostname", "network.ip_addrs", "test.ping"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("functions %v, want %v", got, want)
	}
	if want := hostIPv4(t); !reflect.DeepEqual(u.Data["network.ip_addrs"], want) {
		t.Fatalf("network.ip_addrs = %#v, ip(8) says %#v", u.Data["network.ip_addrs"], want)
	}
	host, err := exec.Command("hostname").Output()
	if err != nil {
		t.Fatal(err)
	}
	if u.Data["network.get_hostname"] != strings.TrimSpace(string(host)) {
		t.Fatalf("hostname %v, hostname(1) says %q", u.Data["network.get_hostname"], host)
	}
	v, tgt, typ := Decode(u.Data["lb_ip"])
	if tgt != "lb*" || typ != "glob" {
		t.Fatalf("lb_ip not published with its allow_tgt: %#v", u.Data["lb_ip"])
	}
	if l := v.([]any); len(l) == 0 || !containsAny(l, "127.0.0.1") {
		t.Fatalf("lb_ip with include_loopback lacks 127.0.0.1: %v", l)
	}

	// The master side reads the update straight into a store.
	st := newStore(t, "")
	changed, err := st.Put(ctx, "m1", u.Data, u.Removed, u.Replace)
	if err != nil || len(changed) != 4 {
		t.Fatalf("store put: %v %v", changed, err)
	}
	es, _ := st.Entries(ctx, "m1")
	if es[0].Function != "lb_ip" || es[0].AllowTgt != "lb*" {
		t.Fatalf("ACL not stored: %#v", es[0])
	}
}

func containsAny(l []any, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// counter is a Runner whose values the test changes at will.
type counter struct {
	mu   sync.Mutex
	vals map[string]any
	errs map[string]error
	runs int
}

func (c *counter) run(_ context.Context, fun string, _ []any, _ map[string]any) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs++
	if err := c.errs[fun]; err != nil {
		return nil, err
	}
	v, ok := c.vals[fun]
	if !ok {
		return nil, errors.New("unknown function " + fun)
	}
	return v, nil
}

func (c *counter) set(fun string, v any) { c.mu.Lock(); c.vals[fun] = v; c.mu.Unlock() }

func TestSchedulerUpdates(t *testing.T) {
	ctx := context.Background()
	c := &counter{vals: map[string]any{"a.a": 1, "b.b": []string{"x"}, "c.c": true}, errs: map[string]error{}}
	rec := newRecorder()
	s := NewScheduler(mustSpecs(t, "a.a: []\nb.b: []\nc.c: []\n"), c.run, rec.publish, 0, nil)

	if err := s.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	rec.next(t, time.Second)

	// A host change with nothing different sends nothing.
	if err := s.publishChanged(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.ch) != 0 {
		t.Fatalf("unchanged values were re-published: %+v", <-rec.ch)
	}
	// Only the changed function goes out.
	c.set("b.b", []string{"x", "y"})
	if err := s.publishChanged(ctx); err != nil {
		t.Fatal(err)
	}
	u := rec.next(t, time.Second)
	if u.Replace || !reflect.DeepEqual(keys(u.Data), []string{"b.b"}) {
		t.Fatalf("change update = %+v, want only b.b", u)
	}

	// A failed publish is retried by the next change check.
	c.set("a.a", 2)
	rec.setFail(errors.New("stream down"))
	if err := s.publishChanged(ctx); err == nil || !strings.Contains(err.Error(), "stream down") {
		t.Fatalf("publish failure not reported: %v", err)
	}
	rec.setFail(nil)
	if err := s.publishChanged(ctx); err != nil {
		t.Fatal(err)
	}
	if u := rec.next(t, time.Second); !reflect.DeepEqual(keys(u.Data), []string{"a.a"}) {
		t.Fatalf("retry = %+v, want a.a", u)
	}

	// A failing function is skipped; the others still go out.
	c.mu.Lock()
	c.errs["c.c"] = errors.New("boom")
	c.mu.Unlock()
	err := s.Refresh(ctx, false)
	if err == nil || !strings.Contains(err.Error(), "mine function c.c (c.c): boom") {
		t.Fatalf("function error = %v", err)
	}
	if u := rec.next(t, time.Second); !reflect.DeepEqual(keys(u.Data), []string{"a.a", "b.b"}) || u.Replace {
		t.Fatalf("refresh with failing function = %+v", u)
	}

	// Dropping a function from mine_functions removes it on the master.
	c.mu.Lock()
	delete(c.errs, "c.c")
	c.mu.Unlock()
	s.SetSpecs(mustSpecs(t, "a.a: []\n"))
	if err := s.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	u = rec.next(t, time.Second)
	if !reflect.DeepEqual(u.Removed, []string{"b.b", "c.c"}) || !reflect.DeepEqual(keys(u.Data), []string{"a.a"}) {
		t.Fatalf("after SetSpecs = %+v", u)
	}
	if _, still := s.last["b.b"]; still {
		t.Fatal("removed function still remembered as published")
	}
}

func TestSchedulerSend(t *testing.T) {
	ctx := context.Background()
	c := &counter{vals: map[string]any{"network.ip_addrs": []string{"198.18.0.9"}, "test.ping": true}}
	rec := newRecorder()
	s := NewScheduler(mustSpecs(t, "web_ip: {mine_function: network.ip_addrs, allow_tgt: 'lb*'}\n"), c.run, rec.publish, 0, nil)

	if err := s.Send(ctx, "web_ip"); err != nil {
		t.Fatal(err)
	}
	u := rec.next(t, time.Second)
	if _, tgt, _ := Decode(u.Data["web_ip"]); tgt != "lb*" || len(u.Data) != 1 || u.Replace {
		t.Fatalf("send web_ip = %+v", u)
	}
	// Not configured but a function: run bare, as Salt's mine.send does.
	if err := s.Send(ctx, "test.ping"); err != nil {
		t.Fatal(err)
	}
	if u := rec.next(t, time.Second); u.Data["test.ping"] != true {
		t.Fatalf("send test.ping = %+v", u)
	}
	if err := s.Send(ctx, "no_alias"); err == nil || !strings.Contains(err.Error(), `"no_alias" is neither`) {
		t.Fatalf("unknown name: %v", err)
	}
	if err := s.Send(ctx, "missing.fn"); err == nil || !strings.Contains(err.Error(), "unknown function missing.fn") {
		t.Fatalf("failing function: %v", err)
	}
}

func TestSchedulerRunLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &counter{vals: map[string]any{"a.a": 1, "b.b": 2}}
	rec := newRecorder()
	s := NewScheduler(mustSpecs(t, "a.a: []\nb.b: []\n"), c.run, rec.publish, 150*time.Millisecond, nil)
	s.ChangePoll = -1
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	if u := rec.next(t, 2*time.Second); !u.Replace || len(u.Data) != 2 {
		t.Fatalf("start of Run = %+v, want a full replace", u)
	}
	// mine_interval: everything again, not a replace.
	if u := rec.next(t, 2*time.Second); u.Replace || len(u.Data) != 2 {
		t.Fatalf("interval refresh = %+v", u)
	}
	// A master push of mine_functions takes effect without waiting.
	s.SetSpecs(mustSpecs(t, "a.a: []\n"))
	deadline := time.After(2 * time.Second)
	for {
		var u update
		select {
		case u = <-rec.ch:
		case <-deadline:
			t.Fatal("SetSpecs never led to an update removing b.b")
		}
		if reflect.DeepEqual(u.Removed, []string{"b.b"}) {
			break
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v on cancel", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
