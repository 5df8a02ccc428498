package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
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

func TestPeerRoutes(t *testing.T) {
	for _, tc := range []struct {
		listen string
		routes []string
		want   string
	}{
		{"127.0.0.1:6222", []string{"127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224"}, "[127.0.0.1:6223 127.0.0.1:6224]"},
		{"0.0.0.0:6222", []string{"127.0.0.1:6222", "nats-route://10.255.0.9:6222"}, "[10.255.0.9:6222]"},
		{"127.0.0.1:6222", []string{"localhost:6222", "192.0.2.7:6222"}, "[192.0.2.7:6222]"},
		{"127.0.0.1:6222", []string{"127.0.0.1:7000"}, "[127.0.0.1:7000]"},
	} {
		got := fmt.Sprint(peerRoutes(config.Cluster{RoutesListen: tc.listen, Routes: tc.routes}))
		if got != tc.want {
			t.Errorf("peerRoutes(%s, %v) = %s, want %s", tc.listen, tc.routes, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		c    config.Cluster
		want string // "" = valid
	}{
		{config.Cluster{Name: "prod", RoutesListen: "127.0.0.1:6222", Routes: []string{"127.0.0.1:6223"}}, ""},
		{config.Cluster{Name: "prod", NATSURLs: []string{"nats://n1:4222"}}, ""},
		{config.Cluster{}, "cluster.name: required"},
		{config.Cluster{Name: "a.b"}, "cluster.name \"a.b\": only letters"},
		{config.Cluster{Name: "x", NATSURLs: []string{"nats://n1:4222"}, RoutesListen: "127.0.0.1:1"}, "cluster.nats_urls: use either"},
		{config.Cluster{Name: "x", NATSURLs: []string{"n1:4222"}}, "cluster.nats_urls: \"n1:4222\" is not a URL"},
		{config.Cluster{Name: "x", Routes: []string{"127.0.0.1:1"}}, "cluster.routes_listen: required"},
		{config.Cluster{Name: "x", NATSListen: "nope"}, "cluster.nats_listen \"nope\""},
		{config.Cluster{Name: "x", RoutesListen: "127.0.0.1:1", Routes: []string{"h:99999"}}, "cluster.routes: \"h:99999\": bad port"},
	} {
		err := Check(tc.c)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%+v): %v", tc.c, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Check(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}

// TestSecretRequiredBeyondLoopback: an embedded NATS server reachable
// from other machines without a secret would let anyone run jobs.
func TestSecretRequiredBeyondLoopback(t *testing.T) {
	_, err := Start(tctx(t), config.Cluster{Name: "open", NATSListen: "0.0.0.0:0"}, t.TempDir(), Options{Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "cluster.secret_file: required") {
		t.Fatalf("Start without a secret on 0.0.0.0: %v", err)
	}
}
