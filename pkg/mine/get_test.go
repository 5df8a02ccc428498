package mine

import (
	"context"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// inventory is a small stand-in for the master's registry: glob and list
// over ids, grain over a role grain.
type inventory struct {
	roles map[string]string // id -> role grain
	calls int
}

func (inv *inventory) Select(expr, tgtType string) ([]string, error) {
	inv.calls++
	var out []string
	for id, role := range inv.roles {
		ok := false
		switch tgtType {
		case "glob":
			ok, _ = path.Match(expr, id)
		case "list":
			for _, p := range strings.Split(expr, ",") {
				ok = ok || p == id
			}
		case "grain":
			ok = expr == "role:"+role
		default:
			return nil, fmt.Errorf("unsupported tgt_type %q", tgtType)
		}
		if ok {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

// entriesOnly hides MemStore's GetEntries so Get takes the generic path a
// different Store (JetStream KV) would.
type entriesOnly struct{ Store }

// getterOnly offers GetEntries but not MemStore's internal visitor.
type getterOnly struct {
	Store
	m *MemStore
}

func (g getterOnly) GetEntries(ctx context.Context, ids []string, fn string) (map[string]Entry, error) {
	return g.m.GetEntries(ctx, ids, fn)
}

func TestGetACL(t *testing.T) {
	ctx := context.Background()
	inv := &inventory{roles: map[string]string{"web1": "web", "web2": "web", "db1": "db", "lb1": "lb"}}
	base := newStore(t, "")
	put := func(id string, data map[string]any) {
		if _, err := base.Put(ctx, id, data, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	// web minions publish their address to everyone and their secret
	// only to the load balancers; db1 restricts by grain.
	put("web1", map[string]any{"ip": "198.18.0.11", "secret": Encode("s1", "lb*", "glob")})
	put("web2", map[string]any{"ip": "198.18.0.12", "secret": Encode("s2", "lb*", "glob")})
	put("db1", map[string]any{"ip": "198.18.0.21", "secret": Encode("s3", "role:web", "grain")})

	tests := []struct {
		name, requester, tgt, fun, tgtType string
		acl                                ACL
		want                               map[string]any
	}{
		{name: "operator sees all", tgt: "*", fun: "secret",
			want: map[string]any{"web1": "s1", "web2": "s2", "db1": "s3"}},
		{name: "unrestricted function", requester: "db1", tgt: "web*", fun: "ip", acl: ResolverACL(inv),
			want: map[string]any{"web1": "198.18.0.11", "web2": "198.18.0.12"}},
		{name: "lb matches glob allow_tgt", requester: "lb1", tgt: "*", fun: "secret", acl: ResolverACL(inv),
			want: map[string]any{"web1": "s1", "web2": "s2"}},
		{name: "web matches grain allow_tgt only", requester: "web1", tgt: "*", fun: "secret", acl: ResolverACL(inv),
			want: map[string]any{"db1": "s3"}},
		{name: "nil ACL denies restricted entries", requester: "lb1", tgt: "*", fun: "secret",
			want: map[string]any{}},
		{name: "list target", requester: "lb1", tgt: "web2,db1", fun: "ip", tgtType: "list", acl: ResolverACL(inv),
			want: map[string]any{"web2": "198.18.0.12", "db1": "198.18.0.21"}},
		{name: "grain target", tgt: "role:db", fun: "ip", tgtType: "grain",
			want: map[string]any{"db1": "198.18.0.21"}},
		{name: "missing function", tgt: "*", fun: "nope", want: map[string]any{}},
	}
	for _, store := range []Store{base, entriesOnly{base}, getterOnly{base, base}} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%T/%s", store, tt.name), func(t *testing.T) {
				got, err := Get(ctx, store, inv, tt.acl, tt.requester, tt.tgt, tt.fun, tt.tgtType)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %#v, want %#v", got, tt.want)
				}
			})
		}
	}

	// One allow_tgt is resolved once per call, not once per entry.
	inv.calls = 0
	if _, err := Get(ctx, base, inv, ResolverACL(inv), "lb1", "*", "secret", ""); err != nil {
		t.Fatal(err)
	}
	if inv.calls != 3 { // the target, "lb*", "role:web"
		t.Fatalf("resolver called %d times, want 3", inv.calls)
	}

	if _, err := Get(ctx, base, inv, nil, "", "*", "ip", "bogus"); err == nil || !strings.Contains(err.Error(), `"*" (bogus)`) {
		t.Fatalf("bad tgt_type: %v", err)
	}
}

func TestParseGetArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []any
		kwargs  map[string]any
		want    GetRequest
		wantErr string
	}{
		{name: "positional", args: []any{"web*", "network.ip_addrs"},
			want: GetRequest{Tgt: "web*", Funs: []string{"network.ip_addrs"}, TgtType: "glob"}},
		{name: "positional type", args: []any{"role:web", "network.ip_addrs", "grain"},
			want: GetRequest{Tgt: "role:web", Funs: []string{"network.ip_addrs"}, TgtType: "grain"}},
		{name: "expr_form is tgt_type", args: []any{"G@role:web", "x.y"}, kwargs: map[string]any{"expr_form": "compound"},
			want: GetRequest{Tgt: "G@role:web", Funs: []string{"x.y"}, TgtType: "compound"}},
		{name: "kwargs only", kwargs: map[string]any{"tgt": "*", "fun": "a.b", "tgt_type": "glob", "exclude_minion": true, "__pub_jid": "1"},
			want: GetRequest{Tgt: "*", Funs: []string{"a.b"}, TgtType: "glob", ExcludeMinion: true}},
		{name: "comma functions", args: []any{"*", "a.b, c.d"},
			want: GetRequest{Tgt: "*", Funs: []string{"a.b", "c.d"}, TgtType: "glob"}},
		{name: "list functions", args: []any{"*", []any{"a.b", "c.d"}, "glob", "True"},
			want: GetRequest{Tgt: "*", Funs: []string{"a.b", "c.d"}, TgtType: "glob", ExcludeMinion: true}},
		{name: "both type names", args: []any{"*", "a.b", "glob"}, kwargs: map[string]any{"expr_form": "list"}, wantErr: `"expr_form" given twice`},
		{name: "no fun", args: []any{"*"}, wantErr: "fun must name"},
		{name: "no tgt", kwargs: map[string]any{"fun": "a.b"}, wantErr: "tgt must be"},
		{name: "unknown kwarg", args: []any{"*", "a.b"}, kwargs: map[string]any{"bogus": 1}, wantErr: `unknown argument "bogus"`},
		{name: "too many", args: []any{"*", "a.b", "glob", false, "x"}, wantErr: "too many"},
		{name: "bad type", args: []any{"*", "a.b", 3}, wantErr: "tgt_type must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGetArgs(tt.args, tt.kwargs)
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
}

func TestGetRequestRun(t *testing.T) {
	ctx := context.Background()
	inv := &inventory{roles: map[string]string{"web1": "web", "web2": "web"}}
	s := newStore(t, "")
	for _, id := range []string{"web1", "web2"} {
		if _, err := s.Put(ctx, id, map[string]any{"a.b": id + "-a", "c.d": id + "-c"}, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	one, err := GetRequest{Tgt: "*", Funs: []string{"a.b"}, TgtType: "glob", ExcludeMinion: true}.Run(ctx, s, inv, nil, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(one, map[string]any{"web2": "web2-a"}) {
		t.Fatalf("exclude_minion: %#v", one)
	}
	multi, err := GetRequest{Tgt: "*", Funs: []string{"c.d", "a.b"}, TgtType: "glob"}.Run(ctx, s, inv, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a.b": map[string]any{"web1": "web1-a", "web2": "web2-a"},
		"c.d": map[string]any{"web1": "web1-c", "web2": "web2-c"},
	}
	if !reflect.DeepEqual(multi, want) {
		t.Fatalf("multi: %#v", multi)
	}
}
