package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/event"
)

func startBus(t *testing.T, n *Node, onEvent func(event.Event, string)) *Bus {
	t.Helper()
	b := NewBus(n)
	b.OnEvent = onEvent
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// routed waits until every bus hears every other: interest travels over
// the routes asynchronously after Subscribe.
func routed(t *testing.T, buses ...*Bus) {
	t.Helper()
	subs := make([]*event.Subscription, len(buses))
	for i, b := range buses {
		subs[i] = b.Subscribe("probe/*", 1024)
		defer subs[i].Close()
	}
	for i, from := range buses {
		tag := fmt.Sprintf("probe/%d", i)
		for j, s := range subs {
			eventually(t, fmt.Sprintf("bus %d hears bus %d", j, i), 10*time.Second, func() bool {
				from.Publish(context.Background(), tag, nil)
				for {
					select {
					case ev := <-s.C:
						if ev.Tag == tag {
							return true
						}
					case <-time.After(20 * time.Millisecond):
						return false
					}
				}
			})
		}
	}
}

func recv(t *testing.T, s *event.Subscription, d time.Duration) (event.Event, bool) {
	t.Helper()
	select {
	case ev := <-s.C:
		return ev, true
	case <-time.After(d):
		return event.Event{}, false
	}
}

func TestBusAcrossMasters(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]int{}
	onEvent := func(ev event.Event, id string) {
		if ev.Tag == "bus-test/ids" {
			mu.Lock()
			ids[id]++
			mu.Unlock()
		}
	}
	buses := []*Bus{startBus(t, shared[0], onEvent), startBus(t, shared[1], onEvent), startBus(t, shared[2], onEvent)}
	routed(t, buses...)
	subs := make([]*event.Subscription, 3)
	for i, b := range buses {
		subs[i] = b.Subscribe("bus-test/*/ok", 16)
		defer subs[i].Close()
	}
	ctx := context.Background()
	// Published on A: every master's subscribers get it, filtered by glob
	// ('*' crossing '/', as in Salt).
	if err := buses[0].Publish(ctx, "bus-test/x/y/ok", map[string]any{"n": 1, "who": "a"}); err != nil {
		t.Fatal(err)
	}
	if err := buses[1].Publish(ctx, "bus-test/x/not", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		ev, ok := recv(t, s, 5*time.Second)
		if !ok || ev.Tag != "bus-test/x/y/ok" || ev.Data["who"] != "a" || ev.Data["n"] != float64(1) {
			t.Fatalf("master %d got %v %v", i, ev, ok)
		}
		if ev, ok := recv(t, s, 200*time.Millisecond); ok {
			t.Fatalf("master %d got a non-matching event %v", i, ev)
		}
	}
	// Every master sees the same cluster-wide id for one event: the
	// reactor forwarder's dedupe key.
	if err := buses[2].Publish(ctx, "bus-test/ids", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "three masters saw one id", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range ids {
			return len(ids) == 1 && n == 3
		}
		return false
	})
	// Data that is not JSON is refused, not half-sent.
	if err := buses[0].Publish(ctx, "bus-test/bad", map[string]any{"ch": make(chan int)}); err == nil {
		t.Fatal("unencodable event published")
	}
}

func TestTagClass(t *testing.T) {
	for _, tc := range []struct{ tag, want string }{
		{"salt/netapi/hook/deploy", "salt"},
		{"job/2024/ret/web1", "job"},
		{"minion", "minion"},
		{"a.b/c", "other"},
		{"", "other"},
		{"/lead", "other"},
		{"sp ace/x", "other"},
		{"*/x", "other"},
		{">", "other"},
	} {
		if got := tagClass(tc.tag); got != tc.want {
			t.Errorf("tagClass(%q) = %q, want %q", tc.tag, got, tc.want)
		}
	}
}

// FuzzTagClass: whatever a tag holds, its subject token is one valid
// NATS token (no wildcards, dots or whitespace), so a tag can never
// publish outside brine.<cluster>.ev.
func FuzzTagClass(f *testing.F) {
	for _, s := range []string{"salt/netapi/hook/x", "a.b", "*", ">", " ", "\x00/x", "ünï/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		c := tagClass(tag)
		if c == "" || len(c) > 32 {
			t.Fatalf("tagClass(%q) = %q", tag, c)
		}
		for i := 0; i < len(c); i++ {
			switch b := c[i]; {
			case b == '-' || b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z':
			default:
				t.Fatalf("tagClass(%q) = %q holds %q", tag, c, b)
			}
		}
	})
}

// FuzzDecode: records read back from buckets and the bus never panic the
// decoder, and what it accepts has a valid id or tag.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"id":"web1","keys":{"accepted":{"pub":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}`,
		`{"id":"x","functions":{"f":{"value":1}}}`, `{"tag":"a","data":{}}`, `{"id":"../x"}`, `null`, `{"keys":{"bogus":{}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeKeyRecord(b); err == nil {
			if r.ID == "" {
				t.Fatal("key record without id accepted")
			}
			for st, e := range r.Keys {
				if len(e.Pub) != 32 || st == "" {
					t.Fatalf("bad key accepted: %v", r)
				}
			}
		}
		if r, err := decodeMineRecord(b); err == nil && r.ID == "" {
			t.Fatal("mine record without id accepted")
		}
		if st, err := decodeMinionState(b); err == nil && st.ID == "" {
			t.Fatal("minion state without id accepted")
		}
		if w, err := decodeEvent(b); err == nil && (w.Tag == "" || w.Data == nil) {
			t.Fatal("event without tag accepted")
		}
		if it, err := decodeReactItem(b); err == nil && (it.Tag == "" || it.Data == nil) {
			t.Fatal("work item without tag accepted")
		}
	})
}
