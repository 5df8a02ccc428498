package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/brine-cm/brine/pkg/event"
)

// FuzzWebhook drives arbitrary bodies and headers through the handler:
// it must never panic and only ever answer with a documented status.
func FuzzWebhook(f *testing.F) {
	push, _ := os.ReadFile("testdata/push.json")
	hello := []byte("Hello, World!")
	f.Add("POST", "/hook/deploy/web", "application/json", sign256(ghSecret, push), "", "push", "id-1", push)
	f.Add("POST", "/hook/deploy/web", "", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "", "", "", hello)
	f.Add("POST", "/hook/deploy/web", "application/json", "sha256=00", "", "ping", "", []byte(`{`))
	f.Add("POST", "/hook/ci/x", "application/x-www-form-urlencoded", "", "Bearer tok", "", "", []byte("a=%zz&b"))
	f.Add("GET", "/hook/../etc/passwd", "text/plain; charset=\x00", "", "", "", "", []byte{0xff, 0xfe})
	f.Add("POST", "/hook/open/x", "application/vnd.api+json", "", "", "", "d", []byte(`[1e999, -0, "\ud800"]`))
	f.Add("POST", "/hook/ci/x", "application/json", "", "Bearer", "", "", []byte(`{"a":{"b":[{"c":1}]}} `))

	dir := f.TempDir()
	secret := filepath.Join(dir, "gh")
	token := filepath.Join(dir, "tok")
	os.WriteFile(secret, []byte(ghSecret), 0o600)
	os.WriteFile(token, []byte("tok"), 0o600)
	s, err := New(Config{
		MaxBodyBytes: 1 << 16,
		Hooks: map[string]HookRule{
			"deploy/*": {GitHubSecretFile: secret, AllowSHA1: true},
			"ci/*":     {BearerTokenFile: token},
			"open/*":   {BearerTokenFile: token, GitHubSecretFile: secret},
		},
	}, discardSink{}, event.NewLocal(), nil)
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 405: true, 413: true}

	f.Fuzz(func(t *testing.T, method, path, ctype, sig, auth, ghEvent, delivery string, body []byte) {
		req, err := http.NewRequest(method, "http://brine.example", bytes.NewReader(body))
		if err != nil {
			return // not a request an HTTP server could receive
		}
		req.URL.Path = path
		req.RemoteAddr = "192.0.2.1:1234"
		for k, v := range map[string]string{"Content-Type": ctype, "X-Hub-Signature-256": sig,
			"X-Hub-Signature": sig, "Authorization": auth, "X-GitHub-Event": ghEvent, "X-GitHub-Delivery": delivery} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("undocumented status %d for %s %q", rec.Code, method, path)
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("answer is not JSON: %q", rec.Header().Get("Content-Type"))
		}
	})
}

// discardSink keeps nothing, so long fuzz runs do not grow memory.
type discardSink struct{}

func (discardSink) Accept(context.Context, string, map[string]any, string) error { return nil }
