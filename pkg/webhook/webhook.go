// Package webhook is brine's equivalent of Salt's rest_cherrypy /hook
// endpoint: `POST /hook/<path>` becomes the event `salt/netapi/hook/<path>`
// carrying the request's headers, raw body and parsed body. Unlike Salt's
// endpoint, every hook path must be authenticated (GitHub HMAC signature or
// a bearer token) unless the operator opts out, and events are handed to a
// durable Sink (the reactor's spool) before the sender gets its 200.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // GitHub's legacy X-Hub-Signature, only with AllowSHA1.
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brine-cm/brine/pkg/event"
)

// TagPrefix is Salt's tag for webhook events; the hook path is appended.
const TagPrefix = "salt/netapi/hook/"

// RejectedTag is the audit event fired when a request fails authentication
// or hits a path no rule covers. It never carries the body.
const RejectedTag = "hook/rejected"

// Defaults applied by New when a Config field is zero.
const (
	DefaultMaxBodyBytes      = 25 << 20
	DefaultReplayWindow      = time.Hour
	DefaultMaxDeliveries     = 100_000
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	maxHeaderBytes           = 64 << 10
)

// Results counted by the server, one per request.
const (
	ResultAccepted     = "accepted"
	ResultRejectedAuth = "rejected_auth"
	ResultForbidden    = "forbidden"
	ResultReplayed     = "replayed"
	ResultTooLarge     = "too_large"
	ResultBadMethod    = "bad_method"
	ResultNotFound     = "not_found"
	ResultBadRequest   = "bad_request"
	ResultPing         = "ping"
	ResultUnavailable  = "unavailable"
	ResultError        = "error"
)

// Errors a Sink may return (wrapped is fine) to steer the HTTP answer.
var (
	// ErrReplayed: the sink already has (or had) this delivery; the sender
	// gets 200 {"replayed": true} and nothing fires.
	ErrReplayed = errors.New("delivery already accepted")
	// ErrUnavailable: the sink cannot take the event now (queue at its
	// high-water mark, draining); the sender gets 503 and may retry.
	ErrUnavailable = errors.New("event sink unavailable")
)

// Config is the `webhook:` section of the master config.
type Config struct {
	Listen          string // host:port
	TLSCert, TLSKey string
	// MaxBodyBytes bounds a request body; larger requests get 413.
	MaxBodyBytes int64
	// Hooks maps a glob on the hook path (the part after /hook/, '*'
	// crossing '/') to the rule authenticating it. The most specific
	// matching glob wins: an exact path, else the longest glob.
	Hooks map[string]HookRule
	// AllowUnauthenticated lets paths no rule covers through, as Salt's
	// webhook_disable_auth did. Off by default: such paths get 403.
	AllowUnauthenticated bool
	// ReplayWindow is how long an X-GitHub-Delivery id is remembered.
	ReplayWindow time.Duration
	// MaxDeliveries bounds the delivery ids remembered (oldest evicted).
	MaxDeliveries int

	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	// OnResult, when set, is called once per request with one of the
	// Result* strings (for Prometheus counters).
	OnResult func(result string)
}

// HookRule says how requests to matching paths authenticate. When both
// files are set, either method is accepted.
type HookRule struct {
	// GitHubSecretFile holds the shared secret of a GitHub webhook;
	// requests must carry X-Hub-Signature-256: sha256=<hex HMAC of body>.
	GitHubSecretFile string
	// AllowSHA1 also accepts the legacy X-Hub-Signature: sha1=<hex>.
	AllowSHA1 bool
	// BearerTokenFile holds a token expected as Authorization: Bearer <t>.
	BearerTokenFile string
	// AllowUnauthenticated accepts requests on matching paths without a
	// credential, for reactors that check the signature themselves (the
	// #!py deploy reactor with its key in __opts__). Exclusive with the
	// two files above.
	AllowUnauthenticated bool
}

// Sink durably accepts an event: it returns nil only once the event will
// survive a crash (the reactor's spool, after fsync).
type Sink interface {
	Accept(ctx context.Context, tag string, data map[string]any, deliveryID string) error
}

type rule struct {
	open      bool // allow_unauthenticated
	glob      string
	ghSecret  []byte
	allowSHA1 bool
	token     []byte
}

// Server serves POST /hook/<path>.
type Server struct {
	cfg    Config
	rules  []rule // most specific first
	sink   Sink
	bus    event.Bus
	log    *slog.Logger
	seen   *deliveries
	mu     sync.Mutex
	counts map[string]uint64
	addr   atomic.Value // net.Addr once serving
}

// New validates cfg, reads the secret files and returns a Server. With a
// nil sink, events are published straight to bus (not durable).
func New(cfg Config, sink Sink, bus event.Bus, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if sink == nil && bus == nil {
		return nil, errors.New("webhook: need a sink or a bus to deliver events to")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReplayWindow <= 0 {
		cfg.ReplayWindow = DefaultReplayWindow
	}
	if cfg.MaxDeliveries <= 0 {
		cfg.MaxDeliveries = DefaultMaxDeliveries
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("webhook: tls_cert and tls_key must be set together")
	}
	s := &Server{cfg: cfg, sink: sink, bus: bus, log: log, counts: map[string]uint64{},
		seen: newDeliveries(cfg.ReplayWindow, cfg.MaxDeliveries)}
	for glob, hr := range cfg.Hooks {
		r := rule{glob: strings.Trim(glob, "/"), allowSHA1: hr.AllowSHA1}
		if _, err := path.Match(r.glob, ""); err != nil || r.glob == "" {
			return nil, fmt.Errorf("webhook: hook %q: not a valid path glob", glob)
		}
		if hr.AllowUnauthenticated {
			if hr.GitHubSecretFile != "" || hr.BearerTokenFile != "" {
				return nil, fmt.Errorf("webhook: hook %q: allow_unauthenticated cannot be combined with github_secret_file or bearer_token_file", glob)
			}
			log.Warn("WEBHOOK HOOK ACCEPTS UNAUTHENTICATED REQUESTS: anyone who can reach the listener can fire its events; the reactor must verify them", "hook", glob)
			r.open = true
			s.rules = append(s.rules, r)
			continue
		}
		if hr.GitHubSecretFile == "" && hr.BearerTokenFile == "" {
			return nil, fmt.Errorf("webhook: hook %q: needs github_secret_file, bearer_token_file or allow_unauthenticated", glob)
		}
		var err error
		if hr.GitHubSecretFile != "" {
			if r.ghSecret, err = readSecret(hr.GitHubSecretFile); err != nil {
				return nil, fmt.Errorf("webhook: hook %q: %w", glob, err)
			}
		}
		if hr.BearerTokenFile != "" {
			if r.token, err = readSecret(hr.BearerTokenFile); err != nil {
				return nil, fmt.Errorf("webhook: hook %q: %w", glob, err)
			}
		}
		s.rules = append(s.rules, r)
	}
	sort.Slice(s.rules, func(i, j int) bool {
		a, b := s.rules[i].glob, s.rules[j].glob
		if wa, wb := strings.ContainsAny(a, "*?["), strings.ContainsAny(b, "*?["); wa != wb {
			return !wa // exact paths first
		}
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
	return s, nil
}

// ReadSecret reads a secret file, trimming the trailing newline editors
// add. An empty secret is an error: it would make every HMAC guessable.
func ReadSecret(path string) ([]byte, error) { return readSecret(path) }

func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	return b, nil
}

// Counts returns the requests counted so far by result.
func (s *Server) Counts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

func (s *Server) count(result string) {
	s.mu.Lock()
	s.counts[result]++
	s.mu.Unlock()
	if s.cfg.OnResult != nil {
		s.cfg.OnResult(result)
	}
}

// Handler returns the http.Handler; it answers every path (404 outside
// /hook/) so it can be mounted at the root of a dedicated listener.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Addr is the listening address once Serve has started, else nil.
func (s *Server) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// ListenAndServe listens on cfg.Listen (TLS when a cert is configured)
// until ctx is cancelled, then shuts down gracefully.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("webhook: listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("webhook: load TLS key pair %s: %w", s.cfg.TLSCert, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	s.addr.Store(ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook: serve: %w", err)
	case <-ctx.Done():
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// reply writes a JSON answer and counts the result.
func (s *Server) reply(w http.ResponseWriter, status int, result string, body map[string]any) {
	s.count(result)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func fail(msg string) map[string]any { return map[string]any{"success": false, "error": msg} }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	hookPath, ok := parseHookPath(r.URL.Path)
	if !ok {
		s.reply(w, http.StatusNotFound, ResultNotFound, fail("not found"))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reply(w, http.StatusMethodNotAllowed, ResultBadMethod, fail("only POST is allowed"))
		return
	}
	remote := remoteIP(r.RemoteAddr)
	if r.ContentLength > s.cfg.MaxBodyBytes {
		s.reply(w, http.StatusRequestEntityTooLarge, ResultTooLarge, fail("body too large"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.reply(w, http.StatusRequestEntityTooLarge, ResultTooLarge, fail("body too large"))
			return
		}
		s.reply(w, http.StatusBadRequest, ResultBadRequest, fail("reading body failed"))
		return
	}

	rl := s.ruleFor(hookPath)
	if rl == nil && !s.cfg.AllowUnauthenticated {
		s.reject(r.Context(), hookPath, remote, "no hook rule covers this path")
		s.reply(w, http.StatusForbidden, ResultForbidden, fail("forbidden"))
		return
	}
	if rl != nil {
		if reason := rl.authenticate(r.Header, body); reason != "" {
			s.reject(r.Context(), hookPath, remote, reason)
			w.Header().Set("WWW-Authenticate", `Bearer realm="brine-hook"`)
			s.reply(w, http.StatusUnauthorized, ResultRejectedAuth, fail("unauthorized"))
			return
		}
	}

	if r.Header.Get("X-GitHub-Event") == "ping" {
		s.reply(w, http.StatusOK, ResultPing, map[string]any{"success": true, "ping": true})
		return
	}

	post, err := parseBody(r.Header.Get("Content-Type"), body)
	if err != nil {
		s.reply(w, http.StatusBadRequest, ResultBadRequest, fail(err.Error()))
		return
	}
	if r.Header.Get("X-GitHub-Event") != "" {
		if post, err = githubFormPayload(post); err != nil {
			s.reply(w, http.StatusBadRequest, ResultBadRequest, fail(err.Error()))
			return
		}
	}

	delivery := r.Header.Get("X-GitHub-Delivery")
	var key string
	if delivery != "" {
		key = hookPath + "\x00" + delivery
		if !s.seen.reserve(key, time.Now()) {
			s.reply(w, http.StatusOK, ResultReplayed, map[string]any{"success": true, "replayed": true})
			return
		}
	}

	tag := TagPrefix + hookPath
	data := map[string]any{
		"headers":     eventHeaders(r.Header),
		"body":        string(body),
		"post":        post,
		"remote_addr": remote,
	}
	if s.sink != nil {
		err = s.sink.Accept(r.Context(), tag, data, delivery)
	} else {
		err = s.bus.Publish(r.Context(), tag, data)
	}
	switch {
	case err == nil:
		s.reply(w, http.StatusOK, ResultAccepted, map[string]any{"success": true})
	case errors.Is(err, ErrReplayed):
		// Known to the sink from before a restart: keep it remembered here.
		s.reply(w, http.StatusOK, ResultReplayed, map[string]any{"success": true, "replayed": true})
	default:
		if key != "" {
			s.seen.forget(key)
		}
		if errors.Is(err, ErrUnavailable) {
			s.log.Warn("webhook event not accepted", "tag", tag, "err", err)
			w.Header().Set("Retry-After", "5")
			s.reply(w, http.StatusServiceUnavailable, ResultUnavailable, fail("busy, retry later"))
			return
		}
		s.log.Error("webhook event not accepted", "tag", tag, "err", err)
		s.reply(w, http.StatusInternalServerError, ResultError, fail("event not accepted"))
	}
}

func (s *Server) reject(ctx context.Context, hookPath, remote, reason string) {
	s.log.Warn("webhook request rejected", "path", hookPath, "remote_addr", remote, "reason", reason)
	if s.bus == nil {
		return
	}
	_ = s.bus.Publish(ctx, RejectedTag, map[string]any{
		"path": hookPath, "remote_addr": remote, "reason": reason,
	})
}

func (s *Server) ruleFor(hookPath string) *rule {
	for i := range s.rules {
		if event.MatchTag(s.rules[i].glob, hookPath) {
			return &s.rules[i]
		}
	}
	return nil
}

// authenticate returns "" when the request carries a valid credential for
// this rule, else the reason it does not (for the audit event, not the
// client).
func (rl *rule) authenticate(h http.Header, body []byte) string {
	if rl.open {
		return ""
	}
	reason := "no credential"
	if rl.token != nil {
		if auth := h.Get("Authorization"); auth != "" {
			scheme, tok, ok := strings.Cut(auth, " ")
			switch {
			case !ok || !strings.EqualFold(scheme, "Bearer"):
				reason = "malformed Authorization header"
			case subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), rl.token) == 1:
				return ""
			default:
				reason = "wrong bearer token"
			}
		}
	}
	if rl.ghSecret != nil {
		// Two signature headers (a proxy appending one, a crafted request)
		// make "which one counts" an attacker's choice: neither does.
		if len(h.Values("X-Hub-Signature-256")) > 1 || len(h.Values("X-Hub-Signature")) > 1 {
			return "more than one signature header"
		}
		if sig := h.Get("X-Hub-Signature-256"); sig != "" {
			return VerifySignature(rl.ghSecret, body, "sha256", sig)
		}
		if sig := h.Get("X-Hub-Signature"); sig != "" {
			if !rl.allowSHA1 {
				return "sha1 signature not allowed"
			}
			return VerifySignature(rl.ghSecret, body, "sha1", sig)
		}
		if reason == "no credential" {
			reason = "missing signature"
		}
	}
	return reason
}

// VerifySignature checks a GitHub-style "<algo>=<hex>" header against the
// HMAC of body under secret, in constant time. It returns "" when valid,
// else why not. algo is "sha256" or "sha1".
func VerifySignature(secret, body []byte, algo, header string) string {
	var h func() hash.Hash
	switch algo {
	case "sha256":
		h = sha256.New
	case "sha1":
		h = sha1.New
	default:
		return "unsupported signature algorithm"
	}
	prefix, hexSig, ok := strings.Cut(strings.TrimSpace(header), "=")
	if !ok || prefix != algo {
		return "malformed signature"
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != h().Size() {
		return "malformed signature"
	}
	mac := hmac.New(h, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "wrong signature"
	}
	return ""
}

// parseHookPath returns the hook path of /hook/<path>, refusing paths that
// would make odd tags: empty, dot segments, empty segments, or characters
// outside a conservative set.
func parseHookPath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/hook/")
	if !ok {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" || len(rest) > 512 {
		return "", false
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				strings.IndexByte("-_.~@:+=,", c) >= 0) {
				return "", false
			}
		}
	}
	return rest, true
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// eventHeaders copies request headers for the event, minus credentials:
// a bearer token must not end up on the bus or in job data.
func eventHeaders(h http.Header) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Authorization", "Proxy-Authorization", "Cookie":
			continue
		}
		out[ck] = strings.Join(v, ", ")
	}
	return out
}

// parseBody returns the event's `post`: the JSON value for JSON bodies,
// form fields for urlencoded bodies, else an empty map.
func parseBody(contentType string, body []byte) (any, error) {
	if contentType == "" {
		return map[string]any{}, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return map[string]any{}, nil
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if len(bytes.TrimSpace(body)) == 0 {
			return map[string]any{}, nil
		}
		v, err := DecodeJSON(body)
		if err != nil {
			return nil, fmt.Errorf("malformed JSON body: %w", err)
		}
		return v, nil
	case mt == "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("malformed form body: %w", err)
		}
		out := make(map[string]any, len(vals))
		for k, vs := range vals {
			if len(vs) == 1 {
				out[k] = vs[0]
				continue
			}
			l := make([]any, len(vs))
			for i, v := range vs {
				l[i] = v
			}
			out[k] = l
		}
		return out, nil
	}
	return map[string]any{}, nil
}

// githubFormPayload handles GitHub's "application/x-www-form-urlencoded"
// content type, which sends the JSON payload as the form field `payload`.
// Its keys are lifted into post so a reactor reads post['after'] whichever
// content type the hook was set up with; post['payload'] stays the raw
// string, as Salt's rest_cherrypy gives it, for reactors that load_json it.
func githubFormPayload(post any) (any, error) {
	m, ok := post.(map[string]any)
	if !ok {
		return post, nil
	}
	raw, ok := m["payload"].(string)
	if !ok || len(m) != 1 {
		return post, nil
	}
	v, err := DecodeJSON([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("malformed JSON in form field payload: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return post, nil
	}
	if _, clash := obj["payload"]; !clash {
		obj["payload"] = raw
	}
	return obj, nil
}

// DecodeJSON decodes exactly one JSON value, turning integral numbers into
// int64 (so commit counts and ids stay exact) and others into float64.
func DecodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return normalizeNumbers(v), nil
}

func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = normalizeNumbers(x)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		if f, err := t.Float64(); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return t.String()
	}
	return v
}
