package apply

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/state"
	"github.com/brine-cm/brine/pkg/state/mongodb"
)

// TestMongoLive runs mongodb.replset against a real mongod:
//
//	MONGOD=/usr/bin/mongod go test -run TestMongoLive ./pkg/state/apply/
//
// It starts mongod on a temp dbpath with --replSet, initiates the set
// through Run, checks replSetGetConfig, then reconfigures a member option
// and checks the version bump. MongoDB is not packaged for this project's
// build machines, so without MONGOD the test skips.
func TestMongoLive(t *testing.T) {
	bin := os.Getenv("MONGOD")
	if bin == "" {
		t.Skip("MONGOD is not set: point it at a mongod binary to run the live mongodb.replset test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dbpath := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--replSet", "rs0", "--dbpath", dbpath, "--bind_ip", "127.0.0.1",
		"--port", fmt.Sprint(port), "--logpath", filepath.Join(dbpath, "mongod.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	env := &Env{Logger: quiet}
	member := map[string]any{"_id": 0, "host": addr}
	c := chunk("mongodb", "replset", "rs", "rs0", map[string]any{"host": addr, "members": []any{member}})
	// Wait for mongod to accept connections.
	var r state.Result
	for {
		r = Run(ctx, env, Default(env), []state.Chunk{c})[0]
		if resultString(r.Result) == "true" || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if resultString(r.Result) != "true" || r.Changes["initiated"] == nil {
		t.Fatalf("initiate: %+v", r)
	}
	cl, err := mongodb.Dial(ctx, mongodb.DialOptions{Host: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(ctx)
	cfg, err := cl.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg["_id"] != "rs0" || js(mongodb.Summary(cfg)) != fmt.Sprintf(`["0:%s"]`, addr) {
		t.Fatalf("rs.conf() = %v", cfg)
	}
	if r := Run(ctx, env, Default(env), []state.Chunk{c})[0]; resultString(r.Result) != "true" || len(r.Changes) != 0 {
		t.Fatalf("second run: %+v", r)
	}
	// Reconfig needs a primary; wait for the election.
	member["priority"] = 2
	for {
		r = Run(ctx, env, Default(env), []state.Chunk{c})[0]
		if resultString(r.Result) == "true" || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if resultString(r.Result) != "true" {
		t.Fatalf("reconfig: %+v", r)
	}
	cfg, _ = cl.Config(ctx)
	if v, _ := cfg["version"].(int64); v < 2 {
		t.Fatalf("version %v after reconfig", cfg["version"])
	}
}
