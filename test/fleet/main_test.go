package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/brine-cm/brine/test/fleet/mongostub"
)

// The test binary doubles as the small programs the story runs inside a
// namespace (where a goroutine of this process cannot go: setns moves one
// thread, and the Go runtime spreads work over many). helperEnv names the
// program; its inputs come from the environment, never from a shell line.
const (
	helperEnv = "BRINE_FLEET_HELPER"
	urlEnv    = "BRINE_FLEET_URL"    // httpget: the URL to fetch
	recordEnv = "BRINE_FLEET_RECORD" // mongostub: file receiving installed configs as JSON
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		code := m.Run()
		if builtDir != "" {
			os.RemoveAll(builtDir)
		}
		os.Exit(code)
	case "httpget":
		os.Exit(httpGet(os.Getenv(urlEnv)))
	case "mongostub":
		os.Exit(mongoStub(os.Getenv(recordEnv)))
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: unknown helper\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// httpGet prints the body of url; a status other than 200 is a failure.
func httpGet(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "GET %s: %s\n%s", url, resp.Status, b)
		return 1
	}
	os.Stdout.Write(b)
	return 0
}

// mongoStub serves a never-initiated mongod on the namespace's
// 127.0.0.1:27017, where the mongodb.replset state's default host points,
// and appends every config it is given to the record file.
func mongoStub(record string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	l, err := net.Listen("tcp", "127.0.0.1:27017")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongostub:", err)
		return 1
	}
	s := &mongostub.Server{OnConfig: func(d bson.Raw) {
		var v map[string]any
		if err := bson.Unmarshal(d, &v); err != nil {
			fmt.Fprintln(os.Stderr, "mongostub: config:", err)
			return
		}
		b, _ := json.Marshal(v)
		f, err := os.OpenFile(record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mongostub: record:", err)
			return
		}
		f.Write(append(b, '\n'))
		f.Close()
	}}
	fmt.Println("mongostub ready on 127.0.0.1:27017")
	if err := s.Serve(ctx, l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
