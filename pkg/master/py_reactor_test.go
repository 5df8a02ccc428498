package master_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/master"
)

// The story both ways, end to end: GitHub's sha1-signed push reaches the
// real webhook (deploy/* open, allow_unauthenticated), the #!py reactor
// checks the signature with the key kept as an unknown master key
// (__opts__['github']['webhook-key']), and its reaction
// local.state.sls [php-web-host.deploy, prod] renders the SLS from the
// prod file_roots on the minion with the role grain.
func TestPyDeployReactorEndToEnd(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	mdir := filepath.Join(dir, "master")
	os.MkdirAll(mdir, 0o700)
	reactorFile, _ := filepath.Abs("../../states/reactor/code-deploy-py.sls")
	deploySLS := "#!py\ndef run():\n    return {'deployed': {'file.managed': [{'name': grains['deploy_file']}, {'contents': 'env=%s sls=' + __sls__}]}}\n"
	for env := range map[string]bool{"base": true, "prod": true} {
		p := filepath.Join(dir, env, "php-web-host", "deploy.sls")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(fmt.Sprintf(deploySLS, env)), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "pillar"), 0o755)
	const key = "hub-key"
	cfgPath := filepath.Join(dir, "master.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`interface: 127.0.0.1
port: %d
data_dir: %s
auto_accept: true
file_roots: {base: [%s], prod: [%s]}
pillar_roots: {base: [%s]}
github:
  webhook-key: %s
webhook:
  listen: 127.0.0.1:0
  hooks:
    'deploy/*': {allow_unauthenticated: true}
reactor:
  - 'salt/netapi/hook/deploy/*':
    - %s
`, port, mdir, filepath.Join(dir, "base"), filepath.Join(dir, "prod"), filepath.Join(dir, "pillar"), key, reactorFile)), 0o600)
	cfg, err := config.LoadMaster(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	m, err := master.New(cfg, master.Options{Logger: quietLog(), ConfigPath: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); m.Stop() }()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "web1", "deployed")
	mn := startMinion(t, "web1", port, filepath.Join(dir, "web1"), map[string]any{"roles": []any{"php-web-host"}, "deploy_file": target}, nil)
	waitFor(t, "connected", 5*time.Second, mn.Connected)
	waitFor(t, "webhook listening", 5*time.Second, func() bool { return m.WebhookAddr() != "" })

	post := func(delivery, sig string) {
		body := []byte(`{"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567"}`)
		req, _ := http.NewRequest("POST", "http://"+m.WebhookAddr()+"/hook/deploy/php-web-host", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Delivery", delivery)
		if sig == "sign" {
			mac := hmac.New(sha1.New, []byte(key))
			mac.Write(body)
			sig = "sha1=" + hex.EncodeToString(mac.Sum(nil))
		}
		req.Header.Set("X-Hub-Signature", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("hook status %d", res.StatusCode)
		}
	}
	post("forged", "sha1=0000000000000000000000000000000000000000")
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(target); err == nil {
		t.Fatal("a forged hook deployed")
	}
	post("good", "sign")
	waitFor(t, "the deploy from prod", 20*time.Second, func() bool {
		b, _ := os.ReadFile(target)
		return strings.TrimSpace(string(b)) == "env=prod sls=php-web-host.deploy"
	})
}
