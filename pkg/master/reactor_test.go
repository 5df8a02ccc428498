package master_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// TestReactionsPreparedThenSentInOrder: hooks to one path become jobs
// through the reactor's prepared publish (job cache record in parallel,
// announce and delivery in arrival order). Each job/<jid>/new event
// carries what PublishAsync's would, in the order the hooks were
// accepted, and every job reaches the minion and returns.
func TestReactionsPreparedThenSentInOrder(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	sls := filepath.Join(dir, "hook.sls")
	os.WriteFile(sls, []byte("echo:\n  local.test.arg:\n    - tgt: web1\n    - arg:\n      - {{ data['post']['n'] | tojson }}\n"), 0o600)
	m := startMaster(t, dir, port, func(c *config.Master) {
		c.Reactor = []any{map[string]any{"salt/netapi/hook/deploy/*": []any{sls}}}
		c.Webhook = &config.Webhook{Listen: "127.0.0.1:0", Hooks: map[string]config.HookRule{"deploy/*": {AllowUnauthenticated: true}}}
		c.ReactorWorkerThreads = 4
		c.AutoAccept = true
	})
	mn := startMinion(t, "web1", port, filepath.Join(dir, "web1"), nil, nil)
	waitFor(t, "webhook listening", 5*time.Second, func() bool { return m.WebhookAddr() != "" })
	waitFor(t, "web1 connected", 10*time.Second, mn.Connected)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var news []*pb.Event
	rets := map[string]bool{}
	for _, glob := range []string{"job/*/new", "job/*/ret/*"} {
		stream, err := m.ctl.Events(ctx, &pb.EventsRequest{TagGlob: glob})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				ev, err := stream.Recv()
				if err != nil {
					return
				}
				mu.Lock()
				if strings.HasSuffix(ev.GetTag(), "/new") {
					news = append(news, ev)
				} else {
					rets[ev.GetData().GetFields()["jid"].GetStringValue()] = true
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // the subscriptions are in place

	const n = 20
	// Concurrent senders, each hook accepted before the next is sent on
	// its connection: arrival order is the order of the 200s.
	var order []int
	var omu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				omu.Lock()
				res, err := http.Post("http://"+m.WebhookAddr()+"/hook/deploy/web", "application/json",
					bytes.NewReader(fmt.Appendf(nil, `{"n": %d}`, i)))
				if err == nil {
					res.Body.Close()
					if res.StatusCode == 200 {
						order = append(order, i)
					}
				}
				omu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(order) != n {
		t.Fatalf("%d of %d hooks accepted", len(order), n)
	}
	waitFor(t, "every job and return", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(news) == n && len(rets) == n
	})
	mu.Lock()
	defer mu.Unlock()
	var got []int
	for _, ev := range news {
		f := ev.GetData().GetFields()
		got = append(got, int(f["arg"].GetListValue().GetValues()[0].GetNumberValue()))
		if f["fun"].GetStringValue() != "test.arg" || f["tgt"].GetStringValue() != "web1" || f["tgt_type"].GetStringValue() != "glob" ||
			f["user"].GetStringValue() != "reactor" || len(f["minions"].GetListValue().GetValues()) != 1 || !rets[f["jid"].GetStringValue()] {
			t.Errorf("job/new %v", f)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(order) {
		t.Errorf("jobs announced in order %v, hooks accepted in order %v", got, order)
	}
	rec := httptest.NewRecorder()
	m.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, stage := range []string{"prepare", "send"} {
		if want := fmt.Sprintf(`brine_reactor_publish_seconds_count{stage=%q} %d`, stage, n); !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
