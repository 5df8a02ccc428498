package webhook

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

// A hook rule with allow_unauthenticated lets its paths through with no
// credential (the reactor verifies), says so loudly at start, and opens
// nothing else.
func TestPerHookAllowUnauthenticated(t *testing.T) {
	var logs bytes.Buffer
	sink := &memSink{}
	s, err := New(Config{Hooks: map[string]HookRule{
		"deploy/*":  {AllowUnauthenticated: true},
		"deploy/db": {BearerTokenFile: writeSecret(t, t.TempDir(), "tok", "db-token")},
	}}, sink, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "UNAUTHENTICATED") || !strings.Contains(logs.String(), "deploy/*") {
		t.Errorf("no loud warning at start: %s", logs.String())
	}
	f := &fixture{srv: s, sink: sink}
	f.http = httptest.NewServer(s.Handler())
	t.Cleanup(f.http.Close)
	body := []byte(`{"after": "abc"}`)
	json := map[string]string{"Content-Type": "application/json"}
	for _, c := range []struct {
		path string
		hdr  map[string]string
		want int
	}{
		{"/hook/deploy/web", json, 200},
		{"/hook/deploy/web", map[string]string{"Content-Type": "application/json", "X-Hub-Signature": sign1("anything", body)}, 200},
		{"/hook/deploy/db", json, 401}, // the more specific rule still wants its token
		{"/hook/other", json, 403},
	} {
		if r := f.do(t, "POST", c.path, body, c.hdr); r.status != c.want {
			t.Errorf("POST %s: status %d, want %d", c.path, r.status, c.want)
		}
	}
	if n := len(sink.all()); n != 2 {
		t.Errorf("%d events accepted, want 2", n)
	}
	_, err = New(Config{Hooks: map[string]HookRule{"deploy/*": {AllowUnauthenticated: true, GitHubSecretFile: "/x"}}}, sink, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot be combined") {
		t.Errorf("allow_unauthenticated with a secret: %v", err)
	}
}
