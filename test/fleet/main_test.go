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
	"regexp"
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
	loopEnv   = "BRINE_FLEET_LOOP"   // loop: file receiving the summary as JSON
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
	case "loop":
		os.Exit(requestLoop(os.Getenv(urlEnv), os.Getenv(loopEnv)))
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

// pageRe is the whole of a good page: one revision, PHP's 42.
var pageRe = regexp.MustCompile(`^brine-demo rev=([0-9a-f]{40}) php=42\n?$`)

// loopSummary is what the request loop reports when it is stopped.
type loopSummary struct {
	Requests int       `json:"requests"`
	Failures int       `json:"failures"`
	Errors   []string  `json:"errors,omitempty"` // the first few failures
	Runs     []loopRun `json:"runs"`             // consecutive responses with one revision
}

type loopRun struct {
	Rev   string `json:"rev"`
	Count int    `json:"count"`
	First int64  `json:"first_unix_nano"` // when this run's first response arrived
}

// requestLoop GETs url back to back, each on a new connection (so a
// refused connect would show), until SIGTERM, then writes a loopSummary
// to out. A failure is anything but a 200 whose body is exactly one good
// page: a transport error, a 5xx, a 404, a raw PHP file, a mixed body.
func requestLoop(url, out string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var s loopSummary
	fail := func(msg string) {
		s.Failures++
		if len(s.Errors) < 10 {
			s.Errors = append(s.Errors, time.Now().Format("15:04:05.000000 ")+msg)
		}
	}
	fmt.Println("loop started")
	for ctx.Err() == nil {
		s.Requests++
		resp, err := c.Get(url)
		if err != nil {
			fail(err.Error())
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		m := pageRe.FindSubmatch(b)
		switch {
		case err != nil:
			fail("read body: " + err.Error())
		case resp.StatusCode != http.StatusOK:
			fail(fmt.Sprintf("%s: %q", resp.Status, b))
		case m == nil:
			fail(fmt.Sprintf("not one good page: %q", b))
		default:
			rev := string(m[1])
			if n := len(s.Runs); n > 0 && s.Runs[n-1].Rev == rev {
				s.Runs[n-1].Count++
			} else {
				s.Runs = append(s.Runs, loopRun{Rev: rev, Count: 1, First: time.Now().UnixNano()})
			}
		}
	}
	b, _ := json.Marshal(s)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
