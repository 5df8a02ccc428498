package reactor

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/brine-cm/brine/pkg/jinja"
	"github.com/brine-cm/brine/pkg/webhook"
)

// saltFuncs are the salt['...'] helpers a reactor template may call.
func (r *Reactor) saltFuncs() map[string]any {
	return map[string]any{
		"hook.verify_github": jinja.Func(r.verifyGitHub),
	}
}

// verifyGitHub is salt['hook.verify_github'](data, secret_name): true when
// data.headers carries an X-Hub-Signature-256 matching the HMAC-SHA256 of
// data.body under the named secret (compared in constant time). A missing
// or malformed header is false; an unknown secret name is an error, since
// it is a mistake in the reactor file rather than a bad request.
func (r *Reactor) verifyGitHub(args []any, kwargs map[string]any) (any, error) {
	data, name := kwargs["data"], kwargs["secret"]
	if len(args) > 0 {
		data = args[0]
	}
	if len(args) > 1 {
		name = args[1]
	}
	if len(args) > 2 {
		return nil, errors.New("want (data, secret_name)")
	}
	secretName, ok := name.(string)
	if !ok || secretName == "" {
		return nil, errors.New("want (data, secret_name): secret name missing")
	}
	path, ok := r.cfg.Secrets[secretName]
	if !ok {
		return nil, fmt.Errorf("no reactor secret named %q (configure reactor_secrets)", secretName)
	}
	// Read on each call, so a rotated secret takes effect without restart.
	secret, err := webhook.ReadSecret(path)
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", secretName, err)
	}
	ev, ok := data.(map[string]any)
	if !ok {
		return false, nil
	}
	body, ok := ev["body"].(string)
	if !ok {
		return false, nil
	}
	headers, _ := ev["headers"].(map[string]any)
	var sig string
	for k, v := range headers {
		if http.CanonicalHeaderKey(k) == "X-Hub-Signature-256" {
			sig, _ = v.(string)
		}
	}
	if sig == "" {
		return false, nil
	}
	return webhook.VerifySignature(secret, []byte(body), "sha256", sig) == "", nil
}
