package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/brine-cm/brine/pkg/grains"
)

var update = flag.Bool("update", false, "rewrite golden files")

func call(t *testing.T, r *Registry, env *Env, fun string, args []any, kwargs map[string]any) (any, error) {
	t.Helper()
	return r.Call(context.Background(), env, fun, args, kwargs)
}

func TestUnknownFunction(t *testing.T) {
	r := NewRegistry()
	_, err := call(t, r, nil, "foo.bar", nil, nil)
	if !errors.Is(err, ErrUnknownFunction) {
		t.Fatalf("err = %v, want ErrUnknownFunction", err)
	}
	if err.Error() != "'foo.bar' is not available" {
		t.Fatalf("message = %q", err.Error())
	}
}

func TestBindArgs(t *testing.T) {
	doc := Doc{Args: []ArgDoc{
		{Name: "name", Type: Str, Required: true},
		{Name: "count", Type: Int, Default: 1},
		{Name: "ratio", Type: Float},
		{Name: "force", Type: Bool, Default: false},
		{Name: "items", Type: List},
		{Name: "opts", Type: Dict},
		{Name: "cmd", Type: StrOrList},
		{Name: "anything", Type: Any, Default: "dflt"},
		{Name: "kwonly", Type: Str, Default: "k", KeywordOnly: true},
	}}
	tests := []struct {
		name    string
		doc     Doc
		args    []any
		kwargs  map[string]any
		want    map[string]any // name -> bound value
		wantErr string
	}{
		{name: "defaults", args: []any{"x"},
			want: map[string]any{"name": "x", "count": 1, "ratio": nil, "force": false, "items": nil, "anything": "dflt", "kwonly": "k"}},
		{name: "positional then keyword", args: []any{"x", 3.0}, kwargs: map[string]any{"force": "yes", "ratio": "0.5"},
			want: map[string]any{"name": "x", "count": 3, "ratio": 0.5, "force": true}},
		{name: "wire numbers and strings", kwargs: map[string]any{"name": 12.0, "count": "42", "force": 1.0},
			want: map[string]any{"name": "12", "count": 42, "force": true}},
		{name: "keyword only by name", kwargs: map[string]any{"name": "x", "kwonly": "v"}, want: map[string]any{"kwonly": "v"}},
		{name: "dunder ignored", kwargs: map[string]any{"name": "x", "__jid__": "1", "__pub_fun": "f"}, want: map[string]any{"name": "x"}},
		{name: "null takes default", kwargs: map[string]any{"name": "x", "count": nil}, want: map[string]any{"count": 1}},
		{name: "null kept for any", kwargs: map[string]any{"name": "x", "anything": nil}, want: map[string]any{"anything": nil}},
		{name: "str or list", kwargs: map[string]any{"name": "x", "cmd": []string{"a", "b"}}, want: map[string]any{"cmd": []any{"a", "b"}}},
		{name: "missing required", kwargs: map[string]any{"count": 2}, wantErr: "f: argument 'name': missing required argument"},
		{name: "null required", kwargs: map[string]any{"name": nil}, wantErr: "argument 'name': must not be null"},
		{name: "unknown kwarg", kwargs: map[string]any{"name": "x", "colour": "red"}, wantErr: "argument 'colour': unexpected keyword argument (accepted: name, count"},
		{name: "twice", args: []any{"x"}, kwargs: map[string]any{"name": "y"}, wantErr: "argument 'name': given both by position and by keyword"},
		{name: "too many positional", args: []any{"a", 1, 1.0, true, []any{}, map[string]any{}, "c", "any", "extra"}, wantErr: "f: takes at most 8 positional argument(s) (9 given)"},
		{name: "fractional int", kwargs: map[string]any{"name": "x", "count": 2.5}, wantErr: "argument 'count': expected int, got number 2.5"},
		{name: "bad int string", kwargs: map[string]any{"name": "x", "count": "many"}, wantErr: `argument 'count': expected int, got string "many"`},
		{name: "bad bool", kwargs: map[string]any{"name": "x", "force": "maybe"}, wantErr: "argument 'force': expected bool"},
		{name: "bool as str", kwargs: map[string]any{"name": true}, wantErr: "argument 'name': expected str, got bool true"},
		{name: "list wanted", kwargs: map[string]any{"name": "x", "items": "a,b"}, wantErr: "argument 'items': expected list"},
		{name: "dict wanted", kwargs: map[string]any{"name": "x", "opts": []any{1}}, wantErr: "argument 'opts': expected dict, got list [1]"},
		{name: "nan float", kwargs: map[string]any{"name": "x", "ratio": "NaN"}, wantErr: "argument 'ratio': expected float"},
		{name: "varargs and kwargs", doc: Doc{Args: []ArgDoc{{Name: "a", Type: Str}}, Varargs: "rest", Kwargs: true},
			args: []any{"1", "2", 3.0}, kwargs: map[string]any{"z": 1, "__x": 2},
			want: map[string]any{"a": "1", "rest": []any{"2", 3.0}, "restkw": map[string]any{"z": 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := doc
			if tt.doc.Args != nil {
				d = tt.doc
			}
			a, err := BindArgs("f", d, tt.args, tt.kwargs)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrBadArgs) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrBadArgs containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				var got any
				switch k {
				case "rest":
					got = a.Rest
				case "restkw":
					got = a.RestKw
				default:
					got = a.Value(k)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

func TestGetterMisuseIsAnErrorNotACrash(t *testing.T) {
	r := &Registry{funcs: map[string]entry{}}
	r.RegisterBound("x.y", Doc{Args: []ArgDoc{{Name: "n", Type: Int}}}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		return a.Str("n"), nil // wrong getter: a programming error
	})
	var logs bytes.Buffer
	env := &Env{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	_, err := r.Call(context.Background(), env, "x.y", nil, nil)
	if err == nil || !strings.Contains(err.Error(), `x.y: internal error: x.y: argument "n" is declared int, read as [str]`) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(logs.String(), "panicked") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}

// TestBuiltinDocsAreConsistent guards the declarations every built-in
// binds with: defaults must already be of the declared type, names unique.
func TestBuiltinDocsAreConsistent(t *testing.T) {
	r := NewRegistry()
	if len(r.Names()) < 30 {
		t.Fatalf("only %d functions registered", len(r.Names()))
	}
	for _, n := range r.Names() {
		d, _ := r.Doc(n)
		if !strings.Contains(n, ".") || d.Summary == "" {
			t.Errorf("%s: needs module.function name and a summary", n)
		}
		seen := map[string]bool{}
		for _, p := range d.Args {
			if seen[p.Name] || p.Doc == "" {
				t.Errorf("%s: argument %q duplicated or undocumented", n, p.Name)
			}
			seen[p.Name] = true
			if p.Default == nil || p.Required {
				continue
			}
			got, err := convert(p.Type, p.Default)
			if err != nil || !reflect.DeepEqual(got, p.Default) {
				t.Errorf("%s: default of %s (%#v) is not a %s", n, p.Name, p.Default, p.Type)
			}
		}
	}
}

func TestRegisterReplacesAndNamesSorted(t *testing.T) {
	r := NewRegistry()
	r.Register("test.ping", func(context.Context, *Env, []any, map[string]any) (any, error) { return "pong", nil }, Doc{Summary: "mine"})
	r.Register("aaa.first", func(context.Context, *Env, []any, map[string]any) (any, error) { return nil, nil }, Doc{Summary: "x"})
	got, err := call(t, r, nil, "test.ping", nil, nil)
	if err != nil || got != "pong" {
		t.Fatalf("replaced test.ping = %v, %v", got, err)
	}
	names := r.Names()
	if names[0] != "aaa.first" {
		t.Fatalf("names not sorted: %v", names[:3])
	}
}

func TestTestModule(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		fun     string
		args    []any
		kwargs  map[string]any
		want    any
		wantErr string
		retcode int
	}{
		{fun: "test.ping", want: true},
		{fun: "test.true", want: true},
		{fun: "test.false", want: false},
		{fun: "test.echo", args: []any{"hello"}, want: "hello"},
		{fun: "test.echo", args: []any{map[string]any{"a": 1.0}}, want: map[string]any{"a": 1.0}},
		{fun: "test.echo", wantErr: "test.echo: argument 'text': missing required argument"},
		{fun: "test.version", want: grains.Version},
		{fun: "test.arg", args: []any{1.0, "two"}, kwargs: map[string]any{"three": 3.0, "__jid__": "x"},
			want: map[string]any{"args": []any{1.0, "two"}, "kwargs": map[string]any{"three": 3.0}}},
		{fun: "test.arg", want: map[string]any{"args": []any{}, "kwargs": map[string]any{}}},
		{fun: "test.sleep", args: []any{0.01}, want: true},
		{fun: "test.sleep", args: []any{-1.0}, wantErr: "argument 'length': must not be negative"},
		{fun: "test.retcode", args: []any{3.0}, want: 3, retcode: 3},
		{fun: "test.exception", kwargs: map[string]any{"message": "boom"}, wantErr: "boom"},
		{fun: "test.ping", args: []any{1.0}, wantErr: "test.ping: takes at most 0 positional argument(s) (1 given)"},
	}
	for _, tt := range tests {
		t.Run(tt.fun, func(t *testing.T) {
			var sink RetcodeSink
			got, err := r.Call(WithRetcodeSink(context.Background(), &sink), nil, tt.fun, tt.args, tt.kwargs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			if sink.Retcode() != tt.retcode {
				t.Fatalf("retcode = %d, want %d", sink.Retcode(), tt.retcode)
			}
		})
	}
}

func TestSleepHonoursCancel(t *testing.T) {
	r := NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.Call(ctx, nil, "test.sleep", []any{60}, nil)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func testGrains() map[string]any {
	return map[string]any{
		"os":        "Debian",
		"os_family": "Debian",
		"roles":     []any{"web", "db"},
		"ip_interfaces": map[string]any{
			"eth0": []any{"192.0.2.2", "fd00::2"},
		},
		"disks": []any{map[string]any{"name": "sda"}, map[string]any{"size": 10.0}},
	}
}

func TestGrainsModule(t *testing.T) {
	r := NewRegistry()
	env := &Env{Grains: testGrains}
	tests := []struct {
		name    string
		fun     string
		args    []any
		kwargs  map[string]any
		want    any
		wantErr string
	}{
		{name: "get", fun: "grains.get", args: []any{"os"}, want: "Debian"},
		{name: "get nested", fun: "grains.get", args: []any{"ip_interfaces:eth0:1"}, want: "fd00::2"},
		{name: "get negative index", fun: "grains.get", args: []any{"roles:-1"}, want: "db"},
		{name: "get embedded dict", fun: "grains.get", args: []any{"disks:size"}, want: 10.0},
		{name: "get missing default", fun: "grains.get", args: []any{"nope"}, want: ""},
		{name: "get missing given default", fun: "grains.get", args: []any{"nope", []any{}}, want: []any{}},
		{name: "get delimiter", fun: "grains.get", kwargs: map[string]any{"key": "ip_interfaces.eth0.0", "delimiter": "."}, want: "192.0.2.2"},
		{name: "get index out of range", fun: "grains.get", args: []any{"roles:5", "none"}, want: "none"},
		{name: "get empty delimiter", fun: "grains.get", kwargs: map[string]any{"key": "os", "delimiter": ""}, wantErr: "argument 'delimiter'"},
		{name: "item", fun: "grains.item", args: []any{"os", "roles:0", "nope"},
			want: map[string]any{"os": "Debian", "roles:0": "web", "nope": ""}},
		{name: "item default", fun: "grains.item", args: []any{"nope"}, kwargs: map[string]any{"default": nil}, want: map[string]any{"nope": nil}},
		{name: "item bad key", fun: "grains.item", args: []any{1.0}, wantErr: "key 0: expected a string"},
		{name: "ls", fun: "grains.ls", want: []any{"disks", "ip_interfaces", "os", "os_family", "roles"}},
		{name: "items", fun: "grains.items", want: testGrains()},
		{name: "filter_by exact", fun: "grains.filter_by", args: []any{map[string]any{
			"Debian": map[string]any{"pkg": "apache2"}, "RedHat": map[string]any{"pkg": "httpd"}}},
			want: map[string]any{"pkg": "apache2"}},
		{name: "filter_by glob and grain", fun: "grains.filter_by", args: []any{map[string]any{
			"Deb*": "glob", "default": "dflt"}}, kwargs: map[string]any{"grain": "os"}, want: "glob"},
		{name: "filter_by list grain", fun: "grains.filter_by", args: []any{map[string]any{"db": "database", "x": "no"}, "roles"}, want: "database"},
		{name: "filter_by default", fun: "grains.filter_by", args: []any{map[string]any{"Arch": 1.0, "default": 2.0}}, want: 2.0},
		{name: "filter_by base and merge", fun: "grains.filter_by", args: []any{map[string]any{
			"common":  map[string]any{"port": 80.0, "conf": map[string]any{"a": 1.0, "b": 1.0}},
			"Debian":  map[string]any{"conf": map[string]any{"b": 2.0}},
			"default": map[string]any{}}},
			kwargs: map[string]any{"base": "common", "merge": map[string]any{"port": 8080.0}},
			want:   map[string]any{"port": 8080.0, "conf": map[string]any{"a": 1.0, "b": 2.0}}},
		{name: "filter_by none", fun: "grains.filter_by", args: []any{map[string]any{"Arch": 1.0}}, want: nil},
		{name: "filter_by merge into scalar", fun: "grains.filter_by", args: []any{map[string]any{"Debian": 1.0}},
			kwargs: map[string]any{"merge": map[string]any{"x": 1.0}}, wantErr: "argument 'merge'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := call(t, r, env, tt.fun, tt.args, tt.kwargs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
	// No grains at all is not an error.
	if got, err := call(t, r, &Env{}, "grains.get", []any{"os", "x"}, nil); err != nil || got != "x" {
		t.Fatalf("nil grains: %v %v", got, err)
	}
}

func TestEventSend(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name      string
		fun       string
		args      []any
		kwargs    map[string]any
		master    *fakeMaster
		wantEvent *sentEvent
		wantErr   string
	}{
		{name: "tag and data", fun: "event.send", args: []any{"myco/deploy/done", map[string]any{"version": "1.2"}},
			wantEvent: &sentEvent{"myco/deploy/done", map[string]any{"version": "1.2"}}},
		{name: "kwargs become data", fun: "event.send", args: []any{"a/b"}, kwargs: map[string]any{"build": 7.0, "__jid__": "j"},
			wantEvent: &sentEvent{"a/b", map[string]any{"build": 7.0}}},
		{name: "with all grains", fun: "event.send", args: []any{"a/b"}, kwargs: map[string]any{"with_grains": true},
			wantEvent: &sentEvent{"a/b", map[string]any{"grains": testGrains()}}},
		{name: "with some grains", fun: "event.send", args: []any{"a/b"}, kwargs: map[string]any{"with_grains": []any{"os", "nope"}},
			wantEvent: &sentEvent{"a/b", map[string]any{"grains": map[string]any{"os": "Debian"}}}},
		{name: "fire_master", fun: "event.fire_master", args: []any{map[string]any{"x": 1.0}, "legacy/tag"},
			wantEvent: &sentEvent{"legacy/tag", map[string]any{"x": 1.0}}},
		{name: "empty tag", fun: "event.send", args: []any{""}, wantErr: "event.send: argument 'tag': must not be empty"},
		{name: "data not a dict", fun: "event.send", args: []any{"a", "text"}, wantErr: "argument 'data': expected dict"},
		{name: "bad with_grains", fun: "event.send", args: []any{"a"}, kwargs: map[string]any{"with_grains": "os"}, wantErr: "argument 'with_grains'"},
		{name: "master fails", fun: "event.send", args: []any{"a/b"}, master: &fakeMaster{err: errors.New("link down")}, wantErr: "event.send a/b: link down"},
		{name: "no master", fun: "event.send", args: []any{"a/b"}, master: nil, wantErr: "no connection to the master"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm := tt.master
			if fm == nil && tt.name != "no master" {
				fm = &fakeMaster{}
			}
			env := &Env{ID: "web1", Grains: testGrains}
			if fm != nil {
				env.Master = fm
			}
			got, err := call(t, r, env, tt.fun, tt.args, tt.kwargs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if fm != nil && len(fm.events) != 0 {
					t.Fatalf("event sent despite error: %v", fm.events)
				}
				return
			}
			if err != nil || got != true {
				t.Fatalf("got %v, %v", got, err)
			}
			if len(fm.events) != 1 || !reflect.DeepEqual(fm.events[0], *tt.wantEvent) {
				t.Fatalf("events = %#v, want %#v", fm.events, *tt.wantEvent)
			}
		})
	}
}

func TestMineGet(t *testing.T) {
	r := NewRegistry()
	data := map[string]any{"web1": []any{"192.0.2.2"}, "web2": []any{"192.0.2.3"}}
	tests := []struct {
		name     string
		args     []any
		kwargs   map[string]any
		master   *fakeMaster
		want     any
		wantCall *masterCall
		wantErr  string
	}{
		{name: "glob", args: []any{"web*", "network.ip_addrs"}, master: &fakeMaster{ret: data}, want: data,
			wantCall: &masterCall{"mine.get", []any{"web*", "network.ip_addrs"}, map[string]any{"tgt_type": "glob", "exclude_minion": false}}},
		{name: "tgt_type grain", args: []any{"role:web", "network.ip_addrs", "grain"}, master: &fakeMaster{ret: data}, want: data,
			wantCall: &masterCall{"mine.get", []any{"role:web", "network.ip_addrs"}, map[string]any{"tgt_type": "grain", "exclude_minion": false}}},
		{name: "expr_form alias", args: []any{"web1,web2", []any{"a", "b"}}, kwargs: map[string]any{"expr_form": "list", "exclude_minion": true},
			master: &fakeMaster{ret: map[string]any{}}, want: map[string]any{},
			wantCall: &masterCall{"mine.get", []any{"web1,web2", []any{"a", "b"}}, map[string]any{"tgt_type": "list", "exclude_minion": true}}},
		{name: "nil answer is empty", args: []any{"x", "f"}, master: &fakeMaster{}, want: map[string]any{}},
		{name: "master error", args: []any{"x", "f"}, master: &fakeMaster{err: errors.New("denied by mine ACL")}, wantErr: "mine.get x: denied by mine ACL"},
		{name: "odd answer", args: []any{"x", "f"}, master: &fakeMaster{ret: "str"}, wantErr: "master returned string"},
		{name: "missing fun", args: []any{"x"}, master: &fakeMaster{}, wantErr: "argument 'fun': missing required argument"},
		{name: "no master", args: []any{"x", "f"}, wantErr: "no connection to the master"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &Env{ID: "web1"}
			if tt.master != nil {
				env.Master = tt.master
			}
			got, err := call(t, r, env, "mine.get", tt.args, tt.kwargs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			if tt.wantCall != nil && (len(tt.master.calls) != 1 || !reflect.DeepEqual(tt.master.calls[0], *tt.wantCall)) {
				t.Fatalf("calls = %#v, want %#v", tt.master.calls, *tt.wantCall)
			}
		})
	}
}

func TestSysModule(t *testing.T) {
	r := NewRegistry()
	names := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	got, err := call(t, r, nil, "sys.list_functions", []any{"cmd"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names(got) {
		if !strings.HasPrefix(n, "cmd.") {
			t.Errorf("sys.list_functions cmd returned %s", n)
		}
	}
	if !reflect.DeepEqual(names(got)[:2], []string{"cmd.has_exec", "cmd.retcode"}) {
		t.Errorf("cmd functions = %v", names(got))
	}
	got, _ = call(t, r, nil, "sys.list_functions", []any{"network.ip_addrs*", "test.ping"}, nil)
	if want := []string{"network.ip_addrs", "network.ip_addrs6", "test.ping"}; !reflect.DeepEqual(names(got), want) {
		t.Errorf("globs = %v, want %v", names(got), want)
	}
	got, _ = call(t, r, nil, "sys.list_functions", nil, nil)
	if len(names(got)) != len(r.Names()) {
		t.Errorf("no argument should list all")
	}
	got, _ = call(t, r, nil, "sys.list_functions", []any{"nosuch"}, nil)
	if len(got.([]any)) != 0 {
		t.Errorf("nosuch matched %v", got)
	}
	if _, err := call(t, r, nil, "sys.list_functions", []any{"[bad"}, nil); !errors.Is(err, ErrBadArgs) {
		t.Errorf("bad glob: %v", err)
	}
	got, _ = call(t, r, nil, "sys.list_modules", nil, nil)
	if want := []string{"cmd", "event", "grains", "mine", "network", "sys", "test"}; !reflect.DeepEqual(names(got), want) {
		t.Errorf("modules = %v", names(got))
	}
	got, err = call(t, r, nil, "sys.doc", []any{"cmd.run"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc := got.(map[string]any)["cmd.run"].(string)
	for _, want := range []string{"stderr interleaved", "cmd (str|list, required)", "timeout (float, default None)", "rstrip (bool, default True)", "CLI Example:"} {
		if !strings.Contains(doc, want) {
			t.Errorf("sys.doc cmd.run lacks %q:\n%s", want, doc)
		}
	}
	got, _ = call(t, r, nil, "sys.doc", []any{"grains.item"}, nil)
	if d := got.(map[string]any)["grains.item"].(string); !strings.Contains(d, "*keys") || !strings.Contains(d, "keyword only, default ':'") {
		t.Errorf("grains.item doc: %s", d)
	}
}

// TestFunctionsDocUpToDate fails when docs/functions.md no longer matches
// the registry. Fix with `go run ./pkg/exec/docgen` (or -update here).
func TestFunctionsDocUpToDate(t *testing.T) {
	const path = "../../docs/functions.md"
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := SpliceGenerated(string(cur), NewRegistry().Markdown())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(cur) != want {
		t.Fatalf("%s is out of date with the registry: run `go run ./pkg/exec/docgen` from the repository root", path)
	}
}

func TestSpliceGenerated(t *testing.T) {
	doc := "intro\n" + DocBegin + "\nold\n" + DocEnd + "\noutro\n"
	got, err := SpliceGenerated(doc, "new\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + DocBegin + "\n\nnew\n\n" + DocEnd + "\noutro\n"; got != want {
		t.Fatalf("got %q", got)
	}
	if _, err := SpliceGenerated("no markers", "x"); err == nil {
		t.Fatal("missing markers accepted")
	}
}

// Every built-in's result must survive JSON (the wire is JSON-shaped).
func TestResultsAreJSON(t *testing.T) {
	r := NewRegistry()
	for _, fun := range []string{"test.arg", "grains.items", "network.interfaces", "sys.doc", "network.ip_addrs6"} {
		got, err := call(t, r, &Env{Grains: testGrains}, fun, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", fun, err)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Fatalf("%s: %v", fun, err)
		}
	}
}
