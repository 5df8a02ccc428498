package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // testing the legacy header
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/event"
)

// memSink records accepted events; err, when set, is returned instead.
type memSink struct {
	mu     sync.Mutex
	events []accepted
	err    error
}

type accepted struct {
	tag, delivery string
	data          map[string]any
}

func (m *memSink) Accept(_ context.Context, tag string, data map[string]any, delivery string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.events = append(m.events, accepted{tag, delivery, data})
	return nil
}

func (m *memSink) all() []accepted {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]accepted(nil), m.events...)
}

const ghSecret = "It's a Secret to Everybody"

func writeSecret(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sign256(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func sign1(secret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

type fixture struct {
	srv  *Server
	http *httptest.Server
	sink *memSink
	rej  *event.Subscription
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{
		Hooks: map[string]HookRule{
			"deploy/*":  {GitHubSecretFile: writeSecret(t, dir, "gh", ghSecret+"\n")},
			"legacy/*":  {GitHubSecretFile: writeSecret(t, dir, "gh1", ghSecret), AllowSHA1: true},
			"ci/*":      {BearerTokenFile: writeSecret(t, dir, "tok", "s3cr3t-token\n")},
			"deploy/db": {BearerTokenFile: writeSecret(t, dir, "tok2", "db-token")},
		},
		MaxBodyBytes: 64 << 10,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	bus := event.NewLocal()
	sink := &memSink{}
	s, err := New(cfg, sink, bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{srv: s, sink: sink, rej: bus.Subscribe(RejectedTag, 100)}
	f.http = httptest.NewServer(s.Handler())
	t.Cleanup(f.http.Close)
	return f
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
}

func (f *fixture) do(t *testing.T, method, path string, body []byte, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	out := resp{status: r.StatusCode, header: r.Header}
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Fatalf("%s %s: response %q is not JSON: %v", method, path, raw, err)
	}
	return out
}

func TestAuthAndRouting(t *testing.T) {
	hello := []byte("Hello, World!")
	tests := []struct {
		name       string
		method     string
		path       string
		body       []byte
		hdr        map[string]string
		unauth     bool
		wantStatus int
		wantEvent  bool
		wantReason string // audit reason on hook/rejected, "" for none
		wantResult string
	}{
		{name: "github published vector", method: "POST", path: "/hook/deploy/web", body: hello,
			hdr:        map[string]string{"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
			wantStatus: 200, wantEvent: true, wantResult: ResultAccepted},
		{name: "wrong signature", method: "POST", path: "/hook/deploy/web", body: hello,
			hdr:        map[string]string{"X-Hub-Signature-256": sign256("not the secret", hello)},
			wantStatus: 401, wantReason: "wrong signature", wantResult: ResultRejectedAuth},
		{name: "signature of another body", method: "POST", path: "/hook/deploy/web", body: []byte("Hello, World?"),
			hdr:        map[string]string{"X-Hub-Signature-256": sign256(ghSecret, hello)},
			wantStatus: 401, wantReason: "wrong signature", wantResult: ResultRejectedAuth},
		{name: "missing signature", method: "POST", path: "/hook/deploy/web", body: hello,
			wantStatus: 401, wantReason: "missing signature", wantResult: ResultRejectedAuth},
		{name: "malformed hex", method: "POST", path: "/hook/deploy/web", body: hello,
			hdr:        map[string]string{"X-Hub-Signature-256": "sha256=zz"},
			wantStatus: 401, wantReason: "malformed signature", wantResult: ResultRejectedAuth},
		{name: "algorithm mislabelled", method: "POST", path: "/hook/deploy/web", body: hello,
			hdr:        map[string]string{"X-Hub-Signature-256": strings.Replace(sign256(ghSecret, hello), "sha256", "sha1", 1)},
			wantStatus: 401, wantReason: "malformed signature", wantResult: ResultRejectedAuth},
		{name: "sha1 refused by default", method: "POST", path: "/hook/deploy/web", body: hello,
			hdr:        map[string]string{"X-Hub-Signature": sign1(ghSecret, hello)},
			wantStatus: 401, wantReason: "sha1 signature not allowed", wantResult: ResultRejectedAuth},
		{name: "sha1 when allowed", method: "POST", path: "/hook/legacy/app", body: hello,
			hdr:        map[string]string{"X-Hub-Signature": sign1(ghSecret, hello)},
			wantStatus: 200, wantEvent: true, wantResult: ResultAccepted},
		{name: "wrong sha1 when allowed", method: "POST", path: "/hook/legacy/app", body: hello,
			hdr:        map[string]string{"X-Hub-Signature": sign1("x", hello)},
			wantStatus: 401, wantReason: "wrong signature", wantResult: ResultRejectedAuth},
		{name: "bearer token", method: "POST", path: "/hook/ci/build", body: hello,
			hdr:        map[string]string{"Authorization": "Bearer s3cr3t-token"},
			wantStatus: 200, wantEvent: true, wantResult: ResultAccepted},
		{name: "wrong bearer token", method: "POST", path: "/hook/ci/build", body: hello,
			hdr:        map[string]string{"Authorization": "Bearer s3cr3t-tokeN"},
			wantStatus: 401, wantReason: "wrong bearer token", wantResult: ResultRejectedAuth},
		{name: "basic auth is not bearer", method: "POST", path: "/hook/ci/build", body: hello,
			hdr:        map[string]string{"Authorization": "Basic czNjcjN0LXRva2Vu"},
			wantStatus: 401, wantReason: "malformed Authorization header", wantResult: ResultRejectedAuth},
		{name: "exact rule beats glob", method: "POST", path: "/hook/deploy/db", body: hello,
			hdr:        map[string]string{"X-Hub-Signature-256": sign256(ghSecret, hello)},
			wantStatus: 401, wantReason: "no credential", wantResult: ResultRejectedAuth},
		{name: "exact rule with its token", method: "POST", path: "/hook/deploy/db", body: hello,
			hdr:        map[string]string{"Authorization": "Bearer db-token"},
			wantStatus: 200, wantEvent: true, wantResult: ResultAccepted},
		{name: "no rule is forbidden", method: "POST", path: "/hook/other", body: hello,
			wantStatus: 403, wantReason: "no hook rule covers this path", wantResult: ResultForbidden},
		{name: "no rule with allow_unauthenticated", method: "POST", path: "/hook/other", body: hello, unauth: true,
			wantStatus: 200, wantEvent: true, wantResult: ResultAccepted},
		{name: "GET", method: "GET", path: "/hook/deploy/web",
			wantStatus: 405, wantResult: ResultBadMethod},
		{name: "outside /hook/", method: "POST", path: "/login", body: hello,
			wantStatus: 404, wantResult: ResultNotFound},
		{name: "bare /hook/", method: "POST", path: "/hook/", body: hello,
			wantStatus: 404, wantResult: ResultNotFound},
		{name: "odd characters in path", method: "POST", path: "/hook/deploy/we%20b", body: hello,
			wantStatus: 404, wantResult: ResultNotFound},
		{name: "ping", method: "POST", path: "/hook/deploy/web", body: []byte(`{"zen":"Design for failure."}`),
			hdr: map[string]string{"X-Hub-Signature-256": sign256(ghSecret, []byte(`{"zen":"Design for failure."}`)),
				"X-GitHub-Event": "ping", "Content-Type": "application/json"},
			wantStatus: 200, wantResult: ResultPing},
		{name: "unsigned ping is still rejected", method: "POST", path: "/hook/deploy/web", body: []byte(`{}`),
			hdr:        map[string]string{"X-GitHub-Event": "ping"},
			wantStatus: 401, wantReason: "missing signature", wantResult: ResultRejectedAuth},
		{name: "malformed JSON", method: "POST", path: "/hook/deploy/web", body: []byte(`{"ref": `),
			hdr: map[string]string{"X-Hub-Signature-256": sign256(ghSecret, []byte(`{"ref": `)),
				"Content-Type": "application/json"},
			wantStatus: 400, wantResult: ResultBadRequest},
		{name: "JSON with trailing garbage", method: "POST", path: "/hook/deploy/web", body: []byte(`{} {}`),
			hdr: map[string]string{"X-Hub-Signature-256": sign256(ghSecret, []byte(`{} {}`)),
				"Content-Type": "application/json"},
			wantStatus: 400, wantResult: ResultBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.AllowUnauthenticated = tc.unauth })
			r := f.do(t, tc.method, tc.path, tc.body, tc.hdr)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %v)", r.status, tc.wantStatus, r.body)
			}
			if tc.wantStatus == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow header %q, want POST", r.header.Get("Allow"))
			}
			if got := len(f.sink.all()); (got == 1) != tc.wantEvent || got > 1 {
				t.Errorf("%d events accepted, want event=%v", got, tc.wantEvent)
			}
			if tc.wantEvent {
				ev := f.sink.all()[0]
				if want := TagPrefix + strings.TrimPrefix(tc.path, "/hook/"); ev.tag != want {
					t.Errorf("tag %q, want %q", ev.tag, want)
				}
				if ev.data["body"] != string(tc.body) {
					t.Errorf("body %q", ev.data["body"])
				}
				if _, ok := ev.data["headers"].(map[string]any)["Authorization"]; ok {
					t.Error("Authorization header leaked into event data")
				}
				if ev.data["remote_addr"] != "127.0.0.1" {
					t.Errorf("remote_addr %v", ev.data["remote_addr"])
				}
			}
			select {
			case ev := <-f.rej.C:
				if tc.wantReason == "" {
					t.Fatalf("unexpected audit event %v", ev.Data)
				}
				if ev.Data["reason"] != tc.wantReason {
					t.Errorf("reason %q, want %q", ev.Data["reason"], tc.wantReason)
				}
				if ev.Data["path"] != strings.TrimPrefix(tc.path, "/hook/") || ev.Data["remote_addr"] != "127.0.0.1" {
					t.Errorf("audit data %v", ev.Data)
				}
				if _, ok := ev.Data["body"]; ok || len(ev.Data) != 3 {
					t.Errorf("audit event must hold only path, remote_addr, reason: %v", ev.Data)
				}
			default:
				if tc.wantReason != "" {
					t.Errorf("no hook/rejected event, want reason %q", tc.wantReason)
				}
			}
			if c := f.srv.Counts(); c[tc.wantResult] != 1 {
				t.Errorf("counts %v, want one %s", c, tc.wantResult)
			}
		})
	}
}

func TestGitHubPushPayload(t *testing.T) {
	f := newFixture(t, nil)
	body, err := os.ReadFile("testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	r := f.do(t, "POST", "/hook/deploy/web", body, map[string]string{
		"Content-Type":        "application/json",
		"X-GitHub-Event":      "push",
		"X-GitHub-Delivery":   "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-Hub-Signature-256": sign256(ghSecret, body),
		"User-Agent":          "GitHub-Hookshot/044aadd",
	})
	if r.status != 200 || r.body["success"] != true {
		t.Fatalf("status %d body %v", r.status, r.body)
	}
	evs := f.sink.all()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	if ev.tag != "salt/netapi/hook/deploy/web" || ev.delivery != "72d3162e-cc78-11e3-81ab-4c9367dc0958" {
		t.Errorf("tag %q delivery %q", ev.tag, ev.delivery)
	}
	post := ev.data["post"].(map[string]any)
	if post["after"] != "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" || post["ref"] != "refs/heads/main" {
		t.Errorf("post %v", post)
	}
	repo := post["repository"].(map[string]any)
	if repo["clone_url"] != "https://github.com/acme-ops/webapp.git" {
		t.Errorf("clone_url %v", repo["clone_url"])
	}
	if repo["id"] != int64(186853002) {
		t.Errorf("repository.id %T %v, want exact int64", repo["id"], repo["id"])
	}
	hc := post["head_commit"].(map[string]any)
	if !strings.HasPrefix(hc["message"].(string), "Raise worker count") {
		t.Errorf("head_commit %v", hc)
	}
	h := ev.data["headers"].(map[string]any)
	if h["X-Github-Event"] != "push" || h["User-Agent"] != "GitHub-Hookshot/044aadd" {
		t.Errorf("headers %v", h)
	}
	if ev.data["body"] != string(body) {
		t.Error("raw body differs from what was sent")
	}
}

func TestFormBody(t *testing.T) {
	f := newFixture(t, nil)
	body := []byte("payload=%7B%22after%22%3A%22abc%22%7D&tag=a&tag=b")
	r := f.do(t, "POST", "/hook/ci/x", body, map[string]string{
		"Authorization": "Bearer s3cr3t-token",
		"Content-Type":  "application/x-www-form-urlencoded",
	})
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	post := f.sink.all()[0].data["post"].(map[string]any)
	if post["payload"] != `{"after":"abc"}` {
		t.Errorf("payload %v", post["payload"])
	}
	if tags, _ := post["tag"].([]any); len(tags) != 2 || tags[1] != "b" {
		t.Errorf("repeated field %v", post["tag"])
	}
}

func TestReplay(t *testing.T) {
	f := newFixture(t, nil)
	body := []byte(`{"after":"abc"}`)
	hdr := map[string]string{
		"Content-Type":        "application/json",
		"X-GitHub-Delivery":   "d-1",
		"X-Hub-Signature-256": sign256(ghSecret, body),
	}
	if r := f.do(t, "POST", "/hook/deploy/web", body, hdr); r.status != 200 || r.body["replayed"] != nil {
		t.Fatalf("first delivery: %d %v", r.status, r.body)
	}
	r := f.do(t, "POST", "/hook/deploy/web", body, hdr)
	if r.status != 200 || r.body["replayed"] != true || r.body["success"] != true {
		t.Fatalf("replay: %d %v", r.status, r.body)
	}
	hdr["X-GitHub-Delivery"] = "d-2"
	if r := f.do(t, "POST", "/hook/deploy/web", body, hdr); r.body["replayed"] != nil {
		t.Fatalf("new delivery id treated as replay: %v", r.body)
	}
	if n := len(f.sink.all()); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
	if c := f.srv.Counts(); c[ResultReplayed] != 1 || c[ResultAccepted] != 2 {
		t.Errorf("counts %v", c)
	}
}

func TestReplayUnauthenticatedDoesNotPoison(t *testing.T) {
	f := newFixture(t, nil)
	body := []byte(`{}`)
	bad := map[string]string{"X-GitHub-Delivery": "d-9", "X-Hub-Signature-256": sign256("guess", body)}
	if r := f.do(t, "POST", "/hook/deploy/web", body, bad); r.status != 401 {
		t.Fatalf("status %d", r.status)
	}
	good := map[string]string{"X-GitHub-Delivery": "d-9", "X-Hub-Signature-256": sign256(ghSecret, body)}
	if r := f.do(t, "POST", "/hook/deploy/web", body, good); r.status != 200 || r.body["replayed"] != nil {
		t.Fatalf("genuine delivery after forged one: %d %v", r.status, r.body)
	}
}

func TestSinkErrors(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantResult string
	}{
		{fmt.Errorf("spool: %w", ErrUnavailable), 503, ResultUnavailable},
		{errors.New("disk full"), 500, ResultError},
		{fmt.Errorf("reactor: %w", ErrReplayed), 200, ResultReplayed},
	}
	for _, tc := range tests {
		t.Run(tc.wantResult, func(t *testing.T) {
			f := newFixture(t, nil)
			f.sink.err = tc.err
			body := []byte("x")
			hdr := map[string]string{"X-GitHub-Delivery": "d", "X-Hub-Signature-256": sign256(ghSecret, body)}
			r := f.do(t, "POST", "/hook/deploy/web", body, hdr)
			if r.status != tc.wantStatus || f.srv.Counts()[tc.wantResult] != 1 {
				t.Fatalf("status %d counts %v", r.status, f.srv.Counts())
			}
			if r.status == 500 && strings.Contains(fmt.Sprint(r.body), "disk full") {
				t.Error("internal error leaked to the client")
			}
			// After a failed accept the sender may retry the same delivery.
			f.sink.err = nil
			r = f.do(t, "POST", "/hook/deploy/web", body, hdr)
			wantReplay := tc.wantResult == ResultReplayed
			if (r.body["replayed"] == true) != wantReplay {
				t.Errorf("retry: %v, want replayed=%v", r.body, wantReplay)
			}
		})
	}
}

func TestOversizedBody(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	big := bytes.Repeat([]byte("a"), 4096)
	hdr := map[string]string{"X-Hub-Signature-256": sign256(ghSecret, big)}
	if r := f.do(t, "POST", "/hook/deploy/web", big, hdr); r.status != 413 {
		t.Fatalf("with Content-Length: status %d", r.status)
	}
	// Chunked: no Content-Length, the limit must hit while reading.
	req, _ := http.NewRequest("POST", f.http.URL+"/hook/deploy/web", io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("X-Hub-Signature-256", sign256(ghSecret, big))
	req.ContentLength = -1
	res, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Fatalf("chunked: status %d", res.StatusCode)
	}
	if n := len(f.sink.all()); n != 0 {
		t.Errorf("%d events from oversized bodies", n)
	}
	if f.srv.Counts()[ResultTooLarge] != 2 {
		t.Errorf("counts %v", f.srv.Counts())
	}
}

// serveReal runs the Server on a real loopback listener with its own
// http.Server timeouts (httptest does not apply them).
func serveReal(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestSlowClientIsCut(t *testing.T) {
	s, err := New(Config{AllowUnauthenticated: true, ReadHeaderTimeout: 300 * time.Millisecond},
		&memSink{}, event.NewLocal(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveReal(t, s)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST /hook/x HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// Dribble a header one byte per 100ms; the server must hang up.
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 512)
		for {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Read(buf); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	for i := 0; ; i++ {
		select {
		case d := <-closed:
			if d > 2*time.Second {
				t.Fatalf("server closed the slow connection only after %v", d)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if i > 40 {
			t.Fatal("slow client still connected after 4s")
		}
		conn.Write([]byte("X"))
	}
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	s, err := New(Config{
		TLSCert: certFile, TLSKey: keyFile,
		Hooks: map[string]HookRule{"deploy/*": {GitHubSecretFile: writeSecret(t, dir, "gh", ghSecret)}},
	}, &memSink{}, event.NewLocal(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveReal(t, s)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test cert
	body := []byte("Hello, World!")
	req, _ := http.NewRequest("POST", "https://"+addr+"/hook/deploy/web", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", sign256(ghSecret, body))
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Fatalf("status %d tls %v", res.StatusCode, res.TLS != nil)
	}
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := writeSecret(t, dir, "empty", "\n")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"rule without method", Config{Hooks: map[string]HookRule{"a/*": {}}}, `hook "a/*": needs`},
		{"missing secret file", Config{Hooks: map[string]HookRule{"a/*": {GitHubSecretFile: filepath.Join(dir, "nope")}}}, "nope"},
		{"empty secret", Config{Hooks: map[string]HookRule{"a/*": {BearerTokenFile: empty}}}, "is empty"},
		{"cert without key", Config{TLSCert: "c.pem"}, "together"},
		{"bad glob", Config{Hooks: map[string]HookRule{"a/[": {BearerTokenFile: empty}}}, "not a valid path glob"},
		{"empty glob", Config{Hooks: map[string]HookRule{"/": {BearerTokenFile: empty}}}, "not a valid path glob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, &memSink{}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestDeliveriesBounded(t *testing.T) {
	d := newDeliveries(time.Minute, 3)
	now := time.Now()
	for i := 0; i < 10; i++ {
		if !d.reserve(fmt.Sprint(i), now) {
			t.Fatalf("fresh id %d refused", i)
		}
	}
	if d.len() != 3 {
		t.Fatalf("remembered %d ids, bound is 3", d.len())
	}
	if d.reserve("9", now) {
		t.Error("recent id accepted twice")
	}
	if !d.reserve("0", now) {
		t.Error("evicted oldest id still refused")
	}
	later := now.Add(2 * time.Minute)
	if !d.reserve("9", later) {
		t.Error("id refused after the window")
	}
	if d.len() != 1 {
		t.Errorf("expired ids kept: %d", d.len())
	}
}

func TestNilSinkPublishesToBus(t *testing.T) {
	bus := event.NewLocal()
	sub := bus.Subscribe(TagPrefix+"*", 10)
	s, err := New(Config{AllowUnauthenticated: true}, nil, bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	res, err := http.Post(ts.URL+"/hook/a/b", "application/json", strings.NewReader(`{"k":[1,2.5]}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	select {
	case ev := <-sub.C:
		post := ev.Data["post"].(map[string]any)
		if ev.Tag != "salt/netapi/hook/a/b" || fmt.Sprint(post["k"]) != "[1 2.5]" {
			t.Errorf("event %v %v", ev.Tag, ev.Data)
		}
	case <-time.After(time.Second):
		t.Fatal("no event on the bus")
	}
}
