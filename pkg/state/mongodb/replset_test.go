package mongodb

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func cfg(version int64, members ...any) Config {
	return Config{
		"_id": "rs0", "version": version, "term": int64(3), "protocolVersion": int64(1),
		"members":  members,
		"settings": map[string]any{"chainingAllowed": true, "electionTimeoutMillis": int64(10000)},
	}
}

func mem(id int64, host string, extra ...any) map[string]any {
	m := map[string]any{"_id": id, "host": host, "priority": float64(1), "votes": int64(1), "hidden": false, "tags": map[string]any{}}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func TestDesired(t *testing.T) {
	three := cfg(4, mem(0, "a:27017"), mem(1, "b:27017"), mem(2, "c:27017"))
	cases := []struct {
		name    string
		current Config
		spec    Spec
		action  Action
		members string // Summary of the result
		version any
		errHas  string
		check   func(t *testing.T, next Config)
	}{
		{
			name:   "initiate sorts by _id",
			spec:   Spec{Name: "rs0", Members: []Member{{ID: 2, Host: "c:27017"}, {ID: 0, Host: "a:27017"}, {ID: 1, Host: "b:27017"}}},
			action: Initiate, members: "0:a:27017 1:b:27017 2:c:27017", version: int64(1),
		},
		{
			name:   "initiate assigns ids in given order",
			spec:   Spec{Name: "rs0", Members: []Member{{ID: -1, Host: "x:1"}, {ID: 5, Host: "y:1"}, {ID: -1, Host: "z:1"}}},
			action: Initiate, members: "5:y:1 6:x:1 7:z:1", version: int64(1),
		},
		{
			name:    "same members no change",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: 1, Host: "b:27017"}, {ID: 0, Host: "a:27017"}, {ID: 2, Host: "c:27017"}}},
			action:  NoChange,
		},
		{
			name:    "host case and int widths do not count as change",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: -1, Host: "A:27017"}, {ID: -1, Host: "b:27017", Options: map[string]any{"priority": 1, "votes": 1}}, {ID: -1, Host: "c:27017"}}},
			action:  NoChange,
		},
		{
			name:    "add member bumps version and keeps ids",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: -1, Host: "a:27017"}, {ID: -1, Host: "b:27017"}, {ID: -1, Host: "c:27017"}, {ID: -1, Host: "d:27017"}}},
			action:  Reconfig, members: "0:a:27017 1:b:27017 2:c:27017 3:d:27017", version: int64(5),
			check: func(t *testing.T, next Config) {
				if _, ok := next["term"]; ok {
					t.Error("term sent back")
				}
				if next["protocolVersion"] != int64(1) {
					t.Error("unmanaged top-level fields dropped")
				}
				m := next["members"].([]any)[1].(map[string]any)
				if m["votes"] != int64(1) || m["hidden"] != false {
					t.Errorf("server-filled member fields dropped: %v", m)
				}
			},
		},
		{
			name:    "remove member",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: 0, Host: "a:27017"}, {ID: 2, Host: "c:27017"}}},
			action:  Reconfig, members: "0:a:27017 2:c:27017", version: int64(5),
		},
		{
			name:    "replaced host gets a fresh id",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: -1, Host: "a:27017"}, {ID: -1, Host: "b:27017"}, {ID: -1, Host: "e:27017"}}},
			action:  Reconfig, members: "0:a:27017 1:b:27017 3:e:27017", version: int64(5),
		},
		{
			name:    "option change",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: 0, Host: "a:27017", Options: map[string]any{"priority": 2}}, {ID: 1, Host: "b:27017"}, {ID: 2, Host: "c:27017"}}},
			action:  Reconfig, members: "0:a:27017 1:b:27017 2:c:27017", version: int64(5),
			check: func(t *testing.T, next Config) {
				if p := next["members"].([]any)[0].(map[string]any)["priority"]; p != 2 {
					t.Errorf("priority %v", p)
				}
			},
		},
		{
			name:    "settings merge",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: 0, Host: "a:27017"}, {ID: 1, Host: "b:27017"}, {ID: 2, Host: "c:27017"}}, Settings: map[string]any{"chainingAllowed": false}},
			action:  Reconfig, members: "0:a:27017 1:b:27017 2:c:27017", version: int64(5),
			check: func(t *testing.T, next Config) {
				st := next["settings"].(map[string]any)
				if st["chainingAllowed"] != false || st["electionTimeoutMillis"] != int64(10000) {
					t.Errorf("settings %v", st)
				}
			},
		},
		{
			name:    "same settings no change",
			current: three,
			spec:    Spec{Name: "rs0", Members: []Member{{ID: 0, Host: "a:27017"}, {ID: 1, Host: "b:27017"}, {ID: 2, Host: "c:27017"}}, Settings: map[string]any{"electionTimeoutMillis": 10000}},
			action:  NoChange,
		},
		{name: "wrong set", current: three, spec: Spec{Name: "other", Members: []Member{{ID: 0, Host: "a:1"}}}, errHas: `belongs to replica set "rs0"`},
		{name: "dup host", spec: Spec{Name: "rs0", Members: []Member{{ID: -1, Host: "a:1"}, {ID: -1, Host: "A:1"}}}, errHas: "listed twice"},
		{name: "dup id", spec: Spec{Name: "rs0", Members: []Member{{ID: 1, Host: "a:1"}, {ID: 1, Host: "b:1"}}}, errHas: "used twice"},
		{name: "no members", spec: Spec{Name: "rs0"}, errHas: "members is empty"},
		{name: "no name", spec: Spec{Members: []Member{{ID: 0, Host: "a:1"}}}, errHas: "name"},
		{name: "host in options", spec: Spec{Name: "rs0", Members: []Member{{ID: 0, Host: "a:1", Options: map[string]any{"host": "b"}}}}, errHas: "not an option"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next, act, err := Desired(c.current, c.spec)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want %q", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if act != c.action {
				t.Fatalf("action %v, want %v", act, c.action)
			}
			if act == NoChange {
				return
			}
			var got []string
			for _, s := range Summary(next) {
				got = append(got, s.(string))
			}
			if strings.Join(got, " ") != c.members {
				t.Fatalf("members %v, want %s", got, c.members)
			}
			if next["version"] != c.version || next["_id"] != "rs0" {
				t.Fatalf("version %v _id %v", next["version"], next["_id"])
			}
			if c.current != nil && c.current["version"] != int64(4) {
				t.Fatal("Desired modified the current config")
			}
			if c.check != nil {
				c.check(t, next)
			}
		})
	}
}

// memClient keeps a config in memory and enforces the server's rules a
// state could break: initiate only once, reconfig version = current+1.
type memClient struct {
	cfg      Config
	initErr  error
	commands []string
}

func (m *memClient) Config(context.Context) (Config, error) {
	if m.cfg == nil {
		return nil, ErrNotInitialized
	}
	return m.cfg, nil
}

func (m *memClient) Initiate(_ context.Context, c Config) error {
	m.commands = append(m.commands, "initiate")
	if m.cfg != nil {
		return errors.New("already initialized")
	}
	m.cfg = roundTrip(c)
	return nil
}

func (m *memClient) Reconfig(_ context.Context, c Config) error {
	m.commands = append(m.commands, "reconfig")
	if c["version"] != m.cfg["version"].(int64)+1 {
		return errors.New("version must be current+1")
	}
	m.cfg = roundTrip(c)
	return nil
}

func (m *memClient) Close(context.Context) error { return nil }

// roundTrip stores what would cross the wire, numbers as the server
// returns them.
func roundTrip(c Config) Config {
	b, _ := json.Marshal(c)
	var out map[string]any
	json.Unmarshal(b, &out)
	return plainJSON(out).(map[string]any)
}

func plainJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = plainJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainJSON(e)
		}
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	}
	return v
}

func TestCheckApplyLifecycle(t *testing.T) {
	ctx := context.Background()
	c := &memClient{}
	spec := Spec{Name: "rs0", Members: []Member{{ID: -1, Host: "db1:27017"}, {ID: -1, Host: "db2:27017"}}}
	ch, comment, _, act, err := spec.Check(ctx, c)
	if err != nil || act != Initiate || ch["initiated"] == nil || !strings.Contains(comment, "would be initiated") {
		t.Fatalf("check = %v %q %v %v", ch, comment, act, err)
	}
	if len(c.commands) != 0 {
		t.Fatal("Check sent a command")
	}
	if _, _, err := spec.Apply(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ch, _, _, act, _ := spec.Check(ctx, c); act != NoChange || len(ch) != 0 {
		t.Fatalf("after initiate: %v %v", act, ch)
	}
	spec.Members = append(spec.Members, Member{ID: -1, Host: "db3:27017"})
	ch, _, err = spec.Apply(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	v := ch["version"].(map[string]any)
	if v["old"] != int64(1) || v["new"] != int64(2) {
		t.Fatalf("version change %v", v)
	}
	if strings.Join(c.commands, ",") != "initiate,reconfig" {
		t.Fatalf("commands %v", c.commands)
	}
	if got := Summary(c.cfg); len(got) != 3 || got[2] != "2:db3:27017" {
		t.Fatalf("members %v", got)
	}
}

// No server listening: the real driver gives up within the timeout and the
// error says where it tried.
func TestDialUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx := context.Background()
	c, err := Dial(ctx, DialOptions{Host: addr, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	start := time.Now()
	_, _, _, _, err = Spec{Name: "rs0", Members: []Member{{ID: 0, Host: addr}}}.Check(ctx, c)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}
