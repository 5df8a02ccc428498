package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
)

// The package's tests share one three-server cluster on loopback
// (embedded nats-server, real routes, real JetStream on disk): forming
// one costs seconds, so it is formed once. Tests keep to their own
// minion ids and jids.
var (
	shared    []*Node
	sharedDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "brine-cluster-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedDir = dir
	code := func() int {
		nodes, err := formCluster(dir, "shared", 3)
		if err != nil {
			fmt.Fprintln(os.Stderr, "forming the test cluster:", err)
			return 1
		}
		shared = nodes
		defer func() {
			for _, n := range nodes {
				n.Close()
			}
		}()
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// clusterConfigs makes n embedded-server configs that route to each other.
func clusterConfigs(name string, n int) ([]config.Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", ports[n+i]))
	}
	var out []config.Cluster
	for i := 0; i < n; i++ {
		out = append(out, config.Cluster{Name: name, NATSListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			RoutesListen: routes[i], Routes: routes})
	}
	return out, nil
}

// formCluster starts n nodes at once (a fresh cluster needs a majority up
// before any of them is ready).
func formCluster(dir, name string, n int) ([]*Node, error) {
	cfgs, err := clusterConfigs(name, n)
	if err != nil {
		return nil, err
	}
	nodes := make([]*Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			nodes[i], errs[i] = Start(ctx, cfgs[i], filepath.Join(dir, fmt.Sprintf("%s-%d", name, i)), Options{Logger: quiet(), ReadyTimeout: 60 * time.Second})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, nd := range nodes {
				if nd != nil {
					nd.Close()
				}
			}
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
	}
	return nodes, nil
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func TestClusterFormed(t *testing.T) {
	for i, n := range shared {
		if n.Replicas() != 3 {
			t.Errorf("node %d: replicas %d, want 3", i, n.Replicas())
		}
		if n.ClientURL() == "" {
			t.Errorf("node %d: no client URL though nats_listen is set", i)
		}
		if st := n.Status(); st["routes"].(int) < 2 || st["nats_connected"] != true {
			t.Errorf("node %d: status %v", i, st)
		}
	}
	if shared[0].ID() == shared[1].ID() {
		t.Fatal("two nodes share an instance id")
	}
}
