package webhook

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GitHub's own delivery quirks and the ways a forged request bends them.
// Each case gets the answer GitHub's documentation implies, and only
// accepted requests reach the sink.
func TestGitHubSignatureEdgeCases(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}`)
	good := sign256(ghSecret, body)
	hexOnly := strings.TrimPrefix(good, "sha256=")
	bad := sign256("not the secret", body)
	for _, tc := range []struct {
		name   string
		sigs   []string // X-Hub-Signature-256 values, each its own header line
		sha1   string
		event  string
		status int
		fired  bool
	}{
		{"valid", []string{good}, "", "push", 200, true},
		{"uppercase hex", []string{"sha256=" + strings.ToUpper(hexOnly)}, "", "push", 200, true},
		{"surrounding spaces", []string{" " + good + " "}, "", "push", 200, true},
		{"wrong prefix sha1= on the sha256 header", []string{"sha1=" + hexOnly}, "", "push", 401, false},
		{"upper-case prefix", []string{"SHA256=" + hexOnly}, "", "push", 401, false},
		{"no prefix", []string{hexOnly}, "", "push", 401, false},
		{"prefix with space", []string{"sha256 =" + hexOnly}, "", "push", 401, false},
		{"truncated by one byte", []string{good[:len(good)-2]}, "", "push", 401, false},
		{"truncated to the prefix", []string{"sha256="}, "", "push", 401, false},
		{"extended", []string{good + "00"}, "", "push", 401, false},
		{"wrong secret", []string{bad}, "", "push", 401, false},
		{"doubled header, both valid", []string{good, good}, "", "push", 401, false},
		{"doubled header, forged first", []string{bad, good}, "", "push", 401, false},
		{"doubled header, forged second", []string{good, bad}, "", "push", 401, false},
		{"comma-joined by a proxy", []string{good + ", " + good}, "", "push", 401, false},
		{"sha1 only, not allowed", nil, sign1(ghSecret, body), "push", 401, false},
		{"no signature", nil, "", "push", 401, false},
		{"ping, valid", []string{good}, "", "ping", 200, false},
		{"ping, unsigned", nil, "", "ping", 401, false},
		{"ping, forged", []string{bad}, "", "ping", 401, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			req, _ := http.NewRequest("POST", f.http.URL+"/hook/deploy/web", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", tc.event)
			for _, s := range tc.sigs {
				req.Header.Add("X-Hub-Signature-256", s)
			}
			if tc.sha1 != "" {
				req.Header.Set("X-Hub-Signature", tc.sha1)
			}
			r, err := f.http.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", r.StatusCode, tc.status)
			}
			if got := len(f.sink.all()) == 1; got != tc.fired {
				t.Fatalf("event fired = %v, want %v", got, tc.fired)
			}
			if tc.status == 401 {
				select {
				case ev := <-f.rej.C:
					if _, leaked := ev.Data["body"]; leaked {
						t.Fatal("audit event carries the body")
					}
				default:
					t.Fatal("no hook/rejected audit event")
				}
			}
		})
	}
}

// GitHub's "application/x-www-form-urlencoded" content type: the payload
// arrives as the form field `payload`, signed as the raw form body. The
// reactor sees the same post['after'] as with JSON, plus Salt's
// post['payload'] string.
func TestGitHubFormEncodedPayload(t *testing.T) {
	f := newFixture(t, nil)
	payload := `{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","repository":{"clone_url":"https://github.com/acme-ops/webapp.git"}}`
	body := []byte("payload=" + url.QueryEscape(payload))
	r := f.do(t, "POST", "/hook/deploy/web", body, map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push",
		"X-Hub-Signature-256": sign256(ghSecret, body),
	})
	if r.status != 200 {
		t.Fatalf("status %d %v", r.status, r.body)
	}
	post := f.sink.all()[0].data["post"].(map[string]any)
	if post["after"] != "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" || post["payload"] != payload {
		t.Fatalf("post %v", post)
	}
	if f.sink.all()[0].data["body"] != string(body) {
		t.Fatal("raw body not kept for hook.verify_github")
	}

	// Signed over the JSON instead of the form body: refused.
	r = f.do(t, "POST", "/hook/deploy/web", body, map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push",
		"X-Hub-Signature-256": sign256(ghSecret, []byte(payload)),
	})
	if r.status != 401 {
		t.Fatalf("form body signed as JSON: status %d", r.status)
	}
	// A payload field that is not JSON: a clear 400, nothing fired.
	broken := []byte("payload=%7Bnot-json")
	r = f.do(t, "POST", "/hook/deploy/web", broken, map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "push",
		"X-Hub-Signature-256": sign256(ghSecret, broken),
	})
	if r.status != 400 || !strings.Contains(r.body["error"].(string), "payload") || len(f.sink.all()) != 1 {
		t.Fatalf("broken payload: %d %v", r.status, r.body)
	}
	// Without X-GitHub-Event a form stays Salt's plain form fields.
	r = f.do(t, "POST", "/hook/ci/x", body, map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer s3cr3t-token",
	})
	if post := f.sink.all()[1].data["post"].(map[string]any); r.status != 200 || len(post) != 1 || post["payload"] != payload {
		t.Fatalf("plain form: %d %v", r.status, post)
	}
}

// A branch deletion is delivered like any push (the reactor decides), with
// its markers intact: after is forty zeros and deleted is true.
func TestGitHubBranchDeletionDelivered(t *testing.T) {
	f := newFixture(t, nil)
	body := []byte(`{"ref":"refs/heads/feature","before":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","after":"0000000000000000000000000000000000000000","deleted":true,"created":false}`)
	r := f.do(t, "POST", "/hook/deploy/web", body, map[string]string{
		"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": sign256(ghSecret, body),
	})
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	post := f.sink.all()[0].data["post"].(map[string]any)
	if post["deleted"] != true || post["after"] != strings.Repeat("0", 40) {
		t.Fatalf("post %v", post)
	}
}

// An empty secret would make every signature forgeable by anyone who
// guesses it is empty: the server refuses to start, naming the file.
func TestEmptySecretFileRefused(t *testing.T) {
	for name, content := range map[string]string{"empty": "", "only a newline": "\n", "CRLF": "\r\n"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "gh")
			os.WriteFile(p, []byte(content), 0o600)
			_, err := New(Config{Hooks: map[string]HookRule{"deploy/*": {GitHubSecretFile: p}}}, &memSink{}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "empty") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
