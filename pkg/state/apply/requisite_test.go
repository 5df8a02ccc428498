package apply

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/brine-cm/brine/pkg/state"
)

// fake is a module whose behaviour each chunk sets in its args:
// changes (Check finds something), checkfail, applyfail, panic. It logs
// every call so tests can assert what ran, in which order, in which mode.
type fake struct {
	mu  *sync.Mutex
	log *[]string
}

func (f fake) note(op string, env *Env, c state.Chunk) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if env.Test {
		op += "(test)"
	}
	*f.log = append(*f.log, op+":"+c.ID)
}

func (f fake) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	f.note("check", env, c)
	if c.Args["panic"] == true {
		panic("boom")
	}
	if c.Args["checkfail"] == true {
		return Plan{}, errors.New("check exploded")
	}
	if c.Args["changes"] == true {
		return Plan{Changes: map[string]any{"did": c.ID}, Comment: "would do " + c.ID}, nil
	}
	return Plan{Comment: c.ID + " is fine"}, nil
}

func (f fake) Apply(ctx context.Context, env *Env, c state.Chunk, p Plan) (map[string]any, string, error) {
	f.note("apply", env, c)
	if c.Args["applyfail"] == true {
		return map[string]any{"partial": true}, "half done", errors.New("apply exploded")
	}
	return p.Changes, "did " + c.ID, nil
}

type watchingFake struct{ fake }

func (w watchingFake) Watch(ctx context.Context, env *Env, c state.Chunk) (map[string]any, string, error) {
	w.note("watch", env, c)
	return map[string]any{"restarted": c.ID}, "watched " + c.ID, nil
}

type rq = state.Requisite

var quiet = slog.New(slog.DiscardHandler)

func ch(id string, args map[string]any, reqs ...rq) state.Chunk {
	return state.Chunk{ID: id, SLS: "web", State: "test", Fun: "fake", Name: id, Args: args, Requisites: reqs}
}

func key(id string) string { return ch(id, nil).Key() }

func req(kind, id string) rq { return rq{Kind: kind, Key: key(id)} }

var changes = map[string]any{"changes": true}

func TestRequisites(t *testing.T) {
	type want struct {
		result  string // true, false, nil
		comment string // regexp
	}
	cases := []struct {
		name     string
		chunks   []state.Chunk
		test     bool
		failhard bool
		want     map[string]want
		calls    string
	}{
		{
			name:   "require met",
			chunks: []state.Chunk{ch("a", changes), ch("b", nil, req(state.Require, "a"))},
			want:   map[string]want{"a": {"true", "did a"}, "b": {"true", "b is fine"}},
			calls:  "check:a apply:a check:b",
		},
		{
			name:   "require failed",
			chunks: []state.Chunk{ch("a", map[string]any{"checkfail": true}), ch("b", changes, req(state.Require, "a"))},
			want:   map[string]want{"a": {"false", "check exploded"}, "b": {"false", `^One or more requisite failed: web\.a$`}},
			calls:  "check:a",
		},
		{
			name:   "apply failure keeps partial changes",
			chunks: []state.Chunk{ch("a", map[string]any{"changes": true, "applyfail": true})},
			want:   map[string]want{"a": {"false", "^half done: apply exploded$"}},
			calls:  "check:a apply:a",
		},
		{
			name:   "watch fires mod_watch",
			chunks: []state.Chunk{ch("a", changes), ch("svc", map[string]any{"watcher": true}, req(state.Watch, "a"))},
			want:   map[string]want{"svc": {"true", "watched svc"}},
			calls:  "check:a apply:a check:svc watch:svc",
		},
		{
			name:   "watch without changes is a require",
			chunks: []state.Chunk{ch("a", nil), ch("svc", map[string]any{"watcher": true}, req(state.Watch, "a"))},
			want:   map[string]want{"svc": {"true", "svc is fine"}},
			calls:  "check:a check:svc",
		},
		{
			name:   "watcher that changes itself is not also watched",
			chunks: []state.Chunk{ch("a", changes), ch("svc", map[string]any{"watcher": true, "changes": true}, req(state.Watch, "a"))},
			want:   map[string]want{"svc": {"true", "did svc"}},
			calls:  "check:a apply:a check:svc apply:svc",
		},
		{
			name:   "watch on a module without mod_watch",
			chunks: []state.Chunk{ch("a", changes), ch("b", nil, req(state.Watch, "a"))},
			want:   map[string]want{"b": {"true", "b is fine"}},
			calls:  "check:a apply:a check:b",
		},
		{
			name:   "watch target failed",
			chunks: []state.Chunk{ch("a", map[string]any{"checkfail": true}), ch("svc", map[string]any{"watcher": true}, req(state.Watch, "a"))},
			want:   map[string]want{"svc": {"false", "One or more requisite failed: web.a"}},
			calls:  "check:a",
		},
		{
			name:   "onchanges not triggered",
			chunks: []state.Chunk{ch("a", nil), ch("b", changes, req(state.OnChanges, "a"))},
			want:   map[string]want{"b": {"true", "^State was not run because none of the onchanges reqs changed$"}},
			calls:  "check:a",
		},
		{
			name:   "onchanges any target",
			chunks: []state.Chunk{ch("a", nil), ch("a2", changes), ch("b", changes, req(state.OnChanges, "a"), req(state.OnChanges, "a2"))},
			want:   map[string]want{"b": {"true", "did b"}},
			calls:  "check:a check:a2 apply:a2 check:b apply:b",
		},
		{
			name:   "onchanges target failed",
			chunks: []state.Chunk{ch("a", map[string]any{"changes": true, "applyfail": true}), ch("b", nil, req(state.OnChanges, "a"))},
			want:   map[string]want{"b": {"false", "One or more requisite failed: web.a"}},
			calls:  "check:a apply:a",
		},
		{
			name:   "onfail not triggered",
			chunks: []state.Chunk{ch("a", nil), ch("b", changes, req(state.OnFail, "a"))},
			want:   map[string]want{"b": {"true", "^State was not run because onfail req did not change$"}},
			calls:  "check:a",
		},
		{
			name:   "onfail triggered",
			chunks: []state.Chunk{ch("a", map[string]any{"checkfail": true}), ch("b", changes, req(state.OnFail, "a"))},
			want:   map[string]want{"a": {"false", "exploded"}, "b": {"true", "did b"}},
			calls:  "check:a check:b apply:b",
		},
		{
			name: "onfail any target",
			chunks: []state.Chunk{ch("ok", nil), ch("bad", map[string]any{"checkfail": true}),
				ch("b", nil, req(state.OnFail, "ok"), req(state.OnFail, "bad"))},
			want:  map[string]want{"b": {"true", "b is fine"}},
			calls: "check:ok check:bad check:b",
		},
		{
			name: "require on a skipped state is met",
			chunks: []state.Chunk{ch("a", nil), ch("b", nil, req(state.OnChanges, "a")),
				ch("c", nil, req(state.Require, "b"))},
			want:  map[string]want{"c": {"true", "c is fine"}},
			calls: "check:a check:c",
		},
		{
			name:   "prereq target would change",
			chunks: []state.Chunk{ch("drain", changes, req(state.Prereq, "deploy")), ch("deploy", changes)},
			want:   map[string]want{"drain": {"true", "did drain"}, "deploy": {"true", "did deploy"}},
			calls:  "check(test):deploy check:drain apply:drain check:deploy apply:deploy",
		},
		{
			name:   "prereq target unchanged",
			chunks: []state.Chunk{ch("drain", changes, req(state.Prereq, "deploy")), ch("deploy", nil)},
			want:   map[string]want{"drain": {"true", "^No changes detected$"}, "deploy": {"true", "deploy is fine"}},
			calls:  "check(test):deploy check:deploy",
		},
		{
			name:   "prereq target check fails",
			chunks: []state.Chunk{ch("drain", changes, req(state.Prereq, "deploy")), ch("deploy", map[string]any{"checkfail": true})},
			// deploy reports its own test-run failure, as Salt does.
			want:  map[string]want{"drain": {"false", "One or more requisite failed: web.deploy"}, "deploy": {"false", "^check exploded$"}},
			calls: "check(test):deploy",
		},
		{
			name:   "prereq-ing state fails: target does not run",
			chunks: []state.Chunk{ch("drain", map[string]any{"changes": true, "applyfail": true}, req(state.Prereq, "deploy")), ch("deploy", changes)},
			want:   map[string]want{"drain": {"false", "apply exploded"}, "deploy": {"false", "One or more requisite failed: web.drain"}},
			calls:  "check(test):deploy check:drain apply:drain",
		},
		{
			name: "prereq target whose own onchanges is not triggered",
			chunks: []state.Chunk{ch("src", nil), ch("drain", changes, req(state.Prereq, "deploy")),
				ch("deploy", changes, req(state.OnChanges, "src"))},
			want:  map[string]want{"drain": {"true", "No changes detected"}, "deploy": {"true", "onchanges"}},
			calls: "check:src",
		},
		{
			name:   "failhard stops the run",
			chunks: []state.Chunk{withFailhard(ch("a", map[string]any{"checkfail": true})), ch("b", changes), ch("c", nil)},
			want:   map[string]want{"a": {"false", "exploded"}, "b": {"false", "failhard is set on web.a"}, "c": {"false", "failhard"}},
			calls:  "check:a",
		},
		{
			name:     "global failhard",
			chunks:   []state.Chunk{ch("a", nil), ch("b", map[string]any{"checkfail": true}), ch("c", nil)},
			failhard: true,
			want:     map[string]want{"a": {"true", ""}, "b": {"false", ""}, "c": {"false", "failhard is set on web.b"}},
			calls:    "check:a check:b",
		},
		{
			name:   "failhard ignored in test mode",
			chunks: []state.Chunk{withFailhard(ch("a", map[string]any{"checkfail": true})), ch("b", changes)},
			test:   true,
			want:   map[string]want{"b": {"nil", "would do b"}},
			calls:  "check(test):a check(test):b",
		},
		{
			name:   "test mode predicts without applying",
			chunks: []state.Chunk{ch("a", changes), ch("b", nil, req(state.Require, "a")), ch("c", changes, req(state.OnChanges, "a"))},
			test:   true,
			want:   map[string]want{"a": {"nil", "would do a"}, "b": {"true", "b is fine"}, "c": {"nil", "would do c"}},
			calls:  "check(test):a check(test):b check(test):c",
		},
		{
			name:   "test mode watch says what it would do",
			chunks: []state.Chunk{ch("a", changes), ch("svc", map[string]any{"watcher": true}, req(state.Watch, "a"))},
			test:   true,
			want:   map[string]want{"svc": {"nil", "watched svc"}},
			calls:  "check(test):a check(test):svc watch(test):svc",
		},
		{
			name:   "test mode prereq",
			chunks: []state.Chunk{ch("drain", changes, req(state.Prereq, "deploy")), ch("deploy", changes)},
			test:   true,
			want:   map[string]want{"drain": {"nil", "would do drain"}, "deploy": {"nil", "would do deploy"}},
			calls:  "check(test):deploy check(test):drain check(test):deploy",
		},
		{
			name:   "module panic fails only its chunk",
			chunks: []state.Chunk{ch("a", map[string]any{"panic": true}), ch("b", nil)},
			want:   map[string]want{"a": {"false", "panicked: boom"}, "b": {"true", ""}},
			calls:  "check:a check:b",
		},
		{
			name:   "requisite not in run",
			chunks: []state.Chunk{ch("b", nil, rq{Kind: state.Require, Key: "pkg_|-x_|-x_|-installed"})},
			want:   map[string]want{"b": {"false", "not in this run"}},
			calls:  "",
		},
		{
			name:   "requisite ordered after",
			chunks: []state.Chunk{ch("b", nil, req(state.Require, "a")), ch("a", nil)},
			want:   map[string]want{"b": {"false", "ordered after"}, "a": {"true", ""}},
			calls:  "check:a",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var log []string
			f := fake{&mu, &log}
			reg := Registry{"test.fake": f}
			// A chunk asking for mod_watch gets the watching variant.
			for i := range c.chunks {
				if c.chunks[i].Args["watcher"] == true {
					c.chunks[i].Fun = "watching"
				}
			}
			reg["test.watching"] = watchingFake{f}
			env := &Env{Test: c.test, Failhard: c.failhard, Logger: quiet}
			res := Run(context.Background(), env, reg, c.chunks)
			if len(res) != len(c.chunks) {
				t.Fatalf("%d results for %d chunks", len(res), len(c.chunks))
			}
			byID := map[string]state.Result{}
			for i, r := range res {
				if r.RunNum != i {
					t.Errorf("result %d has RunNum %d", i, r.RunNum)
				}
				if !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6}$`).MatchString(r.StartTime) {
					t.Errorf("start_time %q", r.StartTime)
				}
				if r.Changes == nil || r.Duration < 0 || r.SLS != "web" || !strings.HasPrefix(r.Function, "test.") {
					t.Errorf("result fields %+v", r)
				}
				byID[r.ID] = r
			}
			for id, w := range c.want {
				r, ok := byID[id]
				if !ok {
					t.Fatalf("no result for %s", id)
				}
				if got := resultString(r.Result); got != w.result {
					t.Errorf("%s: result %s, want %s (%q)", id, got, w.result, r.Comment)
				}
				if !regexp.MustCompile(w.comment).MatchString(r.Comment) {
					t.Errorf("%s: comment %q, want /%s/", id, r.Comment, w.comment)
				}
				if w.result == "nil" && len(r.Changes) == 0 {
					t.Errorf("%s: test-mode result without predicted changes", id)
				}
			}
			if got := strings.Join(log, " "); got != c.calls {
				t.Errorf("calls:\n got %s\nwant %s", got, c.calls)
			}
		})
	}
}

func withFailhard(c state.Chunk) state.Chunk { c.Failhard = true; return c }

func resultString(b *bool) string {
	switch {
	case b == nil:
		return "nil"
	case *b:
		return "true"
	}
	return "false"
}

func TestUnknownModule(t *testing.T) {
	c := state.Chunk{ID: "x", SLS: "s", State: "nosuch", Fun: "thing", Name: "x"}
	d := ch("d", nil, rq{Kind: state.Require, Key: c.Key()})
	var mu sync.Mutex
	var log []string
	res := Run(context.Background(), &Env{Logger: quiet}, Registry{"test.fake": fake{&mu, &log}}, []state.Chunk{c, d})
	if resultString(res[0].Result) != "false" || !strings.Contains(res[0].Comment, "State 'nosuch.thing' was not found in SLS 's'") {
		t.Fatalf("unknown module: %+v", res[0])
	}
	if resultString(res[1].Result) != "false" || !strings.Contains(res[1].Comment, "s.x") {
		t.Fatalf("dependent: %+v", res[1])
	}
}

func TestCanceledContext(t *testing.T) {
	var mu sync.Mutex
	var log []string
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Run(ctx, &Env{Logger: quiet}, Registry{"test.fake": fake{&mu, &log}}, []state.Chunk{ch("a", nil), ch("b", nil)})
	for _, r := range res {
		if resultString(r.Result) != "false" || !strings.Contains(r.Comment, "interrupted") {
			t.Fatalf("%+v", r)
		}
	}
	if len(log) != 0 {
		t.Fatalf("ran %v", log)
	}
}
