// Package config loads the master's and the minion's YAML configuration.
// Keys are Salt's where Salt has one, so an /etc/salt/master fragment reads
// the same here. Every field carries a `doc` tag: docs/configuration.md is
// generated from these definitions (Reference), so the documentation
// cannot drift from the code.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Master is /etc/brine/master.
type Master struct {
	Interface            string              `yaml:"interface" doc:"Address the minion port listens on." default:"0.0.0.0"`
	Port                 int                 `yaml:"port" doc:"TCP port for minion connections (TLS gRPC)." default:"4506"`
	DataDir              string              `yaml:"data_dir" doc:"Keys, job cache, mine and reactor spool live here." default:"/var/lib/brine/master"`
	Socket               string              `yaml:"socket" doc:"Control socket for brinectl; its file permissions (0600, owner) are the access control." default:"<data_dir>/control.sock"`
	AutoAccept           bool                `yaml:"auto_accept" doc:"Accept every new minion key without review. Off by default: new keys wait as pending." default:"false"`
	MaxPendingKeys       int                 `yaml:"max_pending_keys" doc:"Most keys waiting for review (salt-key's pending list); a new id beyond it is refused and counted (brine_minion_refused_total{reason=\"pending_cap\"}) instead of filling the disk. 0 means 1000." default:"1000"`
	AutosignTokenFile    string              `yaml:"autosign_token_file" doc:"File holding an enrollment token; a minion presenting the same token (minion option autosign_token) is accepted on first contact." default:""`
	KeepJobs             float64             `yaml:"keep_jobs" doc:"Hours to keep jobs in the job cache." default:"24"`
	FileRoots            map[string][]string `yaml:"file_roots" doc:"State tree per saltenv, as Salt: {base: [/srv/brine/states]}." default:"{base: [/srv/brine/states]}"`
	PillarRoots          map[string][]string `yaml:"pillar_roots" doc:"Pillar tree per saltenv, as Salt." default:"{base: [/srv/brine/pillar]}"`
	MineFunctions        any                 `yaml:"mine_functions" doc:"mine_functions pushed to every minion (a minion's own entries win)." default:"{}"`
	MineInterval         float64             `yaml:"mine_interval" doc:"Minutes between mine refreshes, pushed to minions that do not set it." default:"60"`
	MineExpire           float64             `yaml:"mine_expire" doc:"Seconds after which the mine data of a minion that is gone is dropped; 0 keeps it." default:"0"`
	Reactor              any                 `yaml:"reactor" doc:"Reactor rules in Salt's format: a list of {tag-glob: [sls files]}." default:"[]"`
	ReactorWorkerThreads int                 `yaml:"reactor_worker_threads" doc:"Reactions run at once." default:"10"`
	ReactorWorkerHWM     int                 `yaml:"reactor_worker_hwm" doc:"Queued reactions before new ones are refused (counted, reactor/overflow fired)." default:"10000"`
	ReactorSecrets       map[string]string   `yaml:"reactor_secrets" doc:"Named secret files for salt['hook.verify_github'](data, NAME) in reactor SLS." default:"{}"`
	Webhook              *Webhook            `yaml:"webhook" doc:"The /hook/ endpoint; off unless set." default:"off"`
	MetricsListen        string              `yaml:"metrics_listen" doc:"Address for the Prometheus /metrics endpoint; empty disables it." default:""`
	MetricsPprof         bool                `yaml:"metrics_pprof" doc:"Also serve Go's /debug/pprof profiles on metrics_listen (for profiling a master under load; leave off in production: profiles show code paths and can cost CPU)." default:"false"`
	GOGC                 int                 `yaml:"gogc" doc:"The Go garbage collector's GOGC for the master: the heap may grow this many percent over what is live before it is collected. Lower trades CPU for memory: at 1,000 idle minions 50 saved about 8 KiB of RSS per minion but cost about 13% more master CPU and slower test.ping rounds (docs/memory.md). 0 is Go's default, 100. A GOGC environment variable wins." default:"0"`
	LogLevel             string              `yaml:"log_level" doc:"debug, info, warning or error." default:"info"`
	LogFormat            string              `yaml:"log_format" doc:"text or json." default:"text"`
	Cluster              *Cluster            `yaml:"cluster" doc:"Several masters as one on NATS JetStream; off by default." default:"off"`
	ReactorPyMaxSteps    uint64              `yaml:"reactor_py_max_steps" doc:"Starlark steps one run of a #!py reactor file may take before it is stopped." default:"10000000"`
	ReactorPyTimeout     float64             `yaml:"reactor_py_timeout" doc:"Seconds one run of a #!py reactor file may take before it is stopped." default:"10"`
	JinjaTrimBlocks      bool                `yaml:"jinja_trim_blocks" doc:"Jinja's trim_blocks for SLS files and file templates, as Salt: the newline after a block tag is removed." default:"false"`
	JinjaLstripBlocks    bool                `yaml:"jinja_lstrip_blocks" doc:"Jinja's lstrip_blocks for SLS files and file templates, as Salt: whitespace before a block tag on its line is removed." default:"false"`
	JinjaSLSEnv          map[string]bool     `yaml:"jinja_sls_env" doc:"Jinja options for SLS, top and pillar files (Salt's jinja_sls_env): trim_blocks and lstrip_blocks, each on when set here or by jinja_trim_blocks/jinja_lstrip_blocks. Other Jinja options are refused." default:"{}"`
	JinjaEnv             map[string]bool     `yaml:"jinja_env" doc:"Jinja options for file.managed templates (Salt's jinja_env), as jinja_sls_env." default:"{}"`

	// Extra holds top-level keys brine does not know, as Salt keeps them
	// in __opts__: #!py reactors read their own settings there
	// (github: {webhook-key: ...}). A key within two edits of a known key
	// is refused as a typo instead.
	Extra map[string]any `yaml:"-"`
}

// Opts is the configuration as Salt's __opts__: every known key under its
// YAML name, and the unknown ones as written.
func (c Master) Opts() (map[string]any, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("master config as __opts__: %w", err)
	}
	out := map[string]any{}
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("master config as __opts__: %w", err)
	}
	for k, v := range c.Extra {
		out[k] = v
	}
	return out, nil
}

// Webhook configures the /hook/ endpoint.
type Webhook struct {
	Listen               string              `yaml:"listen" doc:"Address to listen on, e.g. 0.0.0.0:8000." default:""`
	TLSCert              string              `yaml:"tls_cert" doc:"PEM certificate; with tls_key, serve HTTPS." default:""`
	TLSKey               string              `yaml:"tls_key" doc:"PEM private key." default:""`
	MaxBodyBytes         int64               `yaml:"max_body_bytes" doc:"Largest accepted body (GitHub's own cap)." default:"26214400"`
	AllowUnauthenticated bool                `yaml:"allow_unauthenticated" doc:"Accept hooks on paths that no rule covers." default:"false"`
	ReplayWindow         float64             `yaml:"replay_window" doc:"Seconds an X-GitHub-Delivery id is remembered to refuse replays." default:"3600"`
	Hooks                map[string]HookRule `yaml:"hooks" doc:"Per hook path (glob): how requests must authenticate." default:"{}"`
}

// HookRule is how one hook path authenticates.
type HookRule struct {
	GitHubSecretFile string `yaml:"github_secret_file" doc:"Require a GitHub X-Hub-Signature-256 made with the secret in this file." default:""`
	AllowSHA1        bool   `yaml:"allow_sha1" doc:"Also accept the legacy X-Hub-Signature (HMAC-SHA1)." default:"false"`
	BearerTokenFile  string `yaml:"bearer_token_file" doc:"Require Authorization: Bearer with the token in this file." default:""`
	// The story's #!py deploy reactor checks the signature itself.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated" doc:"Accept requests on these paths without any credential (logged loudly at start); only for reactors that verify the request themselves. Exclusive with the two files." default:"false"`
}

// JinjaWhitespace returns trim_blocks and lstrip_blocks for SLS files
// (jinja_sls_env) and for file templates (jinja_env), each on when the
// section or the global jinja_trim_blocks/jinja_lstrip_blocks says so.
func (c Master) JinjaWhitespace() (sls, files [2]bool, err error) {
	pick := func(key string, env map[string]bool) ([2]bool, error) {
		for k := range env {
			if k != "trim_blocks" && k != "lstrip_blocks" {
				return [2]bool{}, fmt.Errorf("%s: option %q is not supported (only trim_blocks and lstrip_blocks)", key, k)
			}
		}
		return [2]bool{c.JinjaTrimBlocks || env["trim_blocks"], c.JinjaLstripBlocks || env["lstrip_blocks"]}, nil
	}
	if sls, err = pick("jinja_sls_env", c.JinjaSLSEnv); err != nil {
		return sls, files, err
	}
	files, err = pick("jinja_env", c.JinjaEnv)
	return sls, files, err
}

// Cluster joins several masters through NATS JetStream.
type Cluster struct {
	Name         string   `yaml:"name" doc:"Cluster name; all masters of one cluster share it." default:""`
	NATSListen   string   `yaml:"nats_listen" doc:"Client address of the embedded NATS server." default:""`
	RoutesListen string   `yaml:"routes_listen" doc:"Cluster (route) address of the embedded NATS server." default:""`
	Routes       []string `yaml:"routes" doc:"Route addresses of the peer masters." default:"[]"`
	NATSURLs     []string `yaml:"nats_urls" doc:"Use an existing NATS cluster instead of embedding one." default:"[]"`
	SecretFile   string   `yaml:"secret_file" doc:"File holding the shared secret that authenticates NATS routes and clients (the same on every master); required when the embedded NATS server listens beyond loopback." default:""`
}

// Minion is /etc/brine/minion.
type Minion struct {
	ID                 string         `yaml:"id" doc:"Minion id." default:"the hostname"`
	Master             StringList     `yaml:"master" doc:"Master host or host:port; a list fails over in order." default:"salt"`
	MasterPort         int            `yaml:"master_port" doc:"Port used when master has none." default:"4506"`
	MasterFinger       string         `yaml:"master_finger" doc:"SHA-256 fingerprint of the master's certificate; when empty the first one seen is pinned (trust on first use)." default:""`
	DataDir            string         `yaml:"data_dir" doc:"Minion key, pinned master fingerprint." default:"/var/lib/brine/minion"`
	Grains             map[string]any `yaml:"grains" doc:"Static grains merged over the core grains." default:"{}"`
	MineFunctions      any            `yaml:"mine_functions" doc:"Salt's mine_functions." default:"{}"`
	MineInterval       float64        `yaml:"mine_interval" doc:"Minutes between mine refreshes." default:"60"`
	MineChangePoll     float64        `yaml:"mine_change_poll" doc:"Seconds between checks for changed addresses or hostname (re-publishes the mine at once); netlink is watched too. Negative turns change detection off, as in Salt (the mine then refreshes every mine_interval)." default:"2"`
	HostsFile          string         `yaml:"hosts_file" doc:"File host.present and host.absent manage." default:"/etc/hosts"`
	AcceptanceWaitTime float64        `yaml:"acceptance_wait_time" doc:"Seconds between reconnects while the key is rejected or denied." default:"10"`
	ReconDefault       float64        `yaml:"recon_default" doc:"Milliseconds before the first reconnect; doubles up to recon_max, with jitter." default:"1000"`
	ReconMax           float64        `yaml:"recon_max" doc:"Milliseconds, upper bound of the reconnect backoff." default:"10000"`
	ReconRandomize     bool           `yaml:"recon_randomize" doc:"Wait a random time between 0 and the current backoff (recon_default doubled per failed attempt, at most recon_max) before each reconnect, so a fleet does not reconnect in step after a master restart; false waits the whole backoff." default:"true"`
	RandomStartupDelay float64        `yaml:"random_startup_delay" doc:"Seconds; the minion waits a random time between 0 and this before its first connect (a fleet booted together)." default:"0"`
	JobTimeout         float64        `yaml:"job_timeout" doc:"Seconds a job may run on the minion when the job sets no timeout." default:"3600"`
	AutosignToken      string         `yaml:"autosign_token" doc:"Enrollment token sent to the master for autosigning." default:""`
	InitDir            string         `yaml:"init_dir" doc:"Directory of SysV init scripts used when PID 1 is not systemd." default:"/etc/init.d"`
	LogLevel           string         `yaml:"log_level" doc:"debug, info, warning or error." default:"info"`
	LogFormat          string         `yaml:"log_format" doc:"text or json." default:"text"`
}

// StringList accepts a scalar or a sequence (Salt's `master: host` or
// `master: [m1, m2]`).
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = StringList{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

// DefaultMaster returns a master config with Salt-like defaults.
func DefaultMaster() Master {
	return Master{
		Interface: "0.0.0.0", Port: 4506, DataDir: "/var/lib/brine/master", KeepJobs: 24,
		FileRoots:            map[string][]string{"base": {"/srv/brine/states"}},
		PillarRoots:          map[string][]string{"base": {"/srv/brine/pillar"}},
		MineInterval:         60,
		ReactorWorkerThreads: 10, ReactorWorkerHWM: 10000,
		ReactorPyMaxSteps: 10_000_000, ReactorPyTimeout: 10,
		LogLevel: "info", LogFormat: "text",
		MaxPendingKeys: 1000,
	}
}

// DefaultMinion returns a minion config with Salt-like defaults.
func DefaultMinion() Minion {
	return Minion{
		Master: StringList{"salt"}, MasterPort: 4506, DataDir: "/var/lib/brine/minion",
		MineInterval: 60, MineChangePoll: 2, HostsFile: "/etc/hosts",
		AcceptanceWaitTime: 10, ReconDefault: 1000, ReconMax: 10000, ReconRandomize: true, JobTimeout: 3600,
		InitDir: "/etc/init.d", LogLevel: "info", LogFormat: "text",
	}
}

// LoadMaster reads path over the defaults. A missing file is an error only
// when mustExist (an explicit --config).
func LoadMaster(path string, mustExist bool) (Master, error) {
	c := DefaultMaster()
	if err := load(path, mustExist, &c); err != nil {
		return c, err
	}
	if c.Socket == "" {
		c.Socket = c.DataDir + "/control.sock"
	}
	if _, _, err := c.JinjaWhitespace(); err != nil {
		return c, &Error{File: path, Msg: err.Error()}
	}
	if c.GOGC < 0 {
		return c, &Error{File: path, Key: "gogc", Msg: fmt.Sprintf("%d: must be a percentage, or 0 for Go's default (turning the collector off is not offered)", c.GOGC)}
	}
	return c, nil
}

// LoadMinion reads path over the defaults.
func LoadMinion(path string, mustExist bool) (Minion, error) {
	c := DefaultMinion()
	if err := load(path, mustExist, &c); err != nil {
		return c, err
	}
	return c, nil
}

// Error is a configuration error pointing at a file and line.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: key %q: %s", loc, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

func load(path string, mustExist bool, into any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !mustExist {
			return nil
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return &Error{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(root.Content) == 0 {
		return nil // empty file: all defaults
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return &Error{File: path, Line: doc.Line, Msg: "top level must be a mapping of keys"}
	}
	var extra map[string]*yaml.Node
	if m, ok := into.(*Master); ok {
		// Salt passes keys it does not know through to __opts__.
		extra = map[string]*yaml.Node{}
		defer func() {
			if len(extra) == 0 {
				return
			}
			m.Extra = map[string]any{}
			for k, n := range extra {
				var v any
				if n.Decode(&v) == nil {
					m.Extra[k] = v
				}
			}
		}()
	}
	if err := checkKeys(path, doc, reflect.TypeOf(into).Elem(), "", extra); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(into); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return &Error{File: path, Msg: strings.Join(te.Errors, "; ")}
		}
		return &Error{File: path, Msg: err.Error()}
	}
	return nil
}

// checkKeys walks mapping nodes of struct-typed fields and reports the first
// unknown key with its line, so a typo like `auto_acept` is caught rather
// than silently ignored. When extra is not nil, unknown top-level keys
// that are not near a known one are collected there instead.
func checkKeys(file string, n *yaml.Node, t reflect.Type, prefix string, extra map[string]*yaml.Node) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name != "" && name != "-" {
			fields[name] = f
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			near := nearKey(k.Value, fields)
			if extra != nil && near == "" {
				extra[k.Value] = v
				continue
			}
			msg := "unknown key"
			if near != "" {
				msg = fmt.Sprintf("unknown key (did you mean %q?)", near)
			}
			return &Error{File: file, Line: k.Line, Key: prefix + k.Value, Msg: msg}
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			if err := checkKeys(file, v, ft, prefix+k.Value+".", nil); err != nil {
				return err
			}
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct && v.Kind == yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				if err := checkKeys(file, v.Content[j+1], ft.Elem(), prefix+k.Value+"."+v.Content[j].Value+".", nil); err != nil {
					return err
				}
			}
		}
		if err := checkType(file, k, v, f.Type, prefix); err != nil {
			return err
		}
	}
	return nil
}

// nearKey is the known key within two edits of k, "" if none: such a key
// is a typo, not a setting of the user's own.
func nearKey(k string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(k, name, 3); d < bestD || d == bestD && d < 3 && name < best {
			best, bestD = name, d
		}
	}
	if len(k) < 4 && bestD > 1 {
		return "" // short keys are two edits from too much
	}
	return best
}

// editDistance is the Levenshtein distance, or max when it is at least max.
func editDistance(a, b string, max int) int {
	if d := len(a) - len(b); d >= max || -d >= max {
		return max
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], max)
}

// checkType gives scalar type errors a line and a key name; yaml.v3's own
// messages name neither the key nor, for some kinds, the line.
func checkType(file string, k, v *yaml.Node, t reflect.Type, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	bad := func(want string) error {
		return &Error{File: file, Line: v.Line, Key: prefix + k.Value, Msg: fmt.Sprintf("want %s, got %q", want, v.Value)}
	}
	if v.Kind != yaml.ScalarNode {
		switch t.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint64, reflect.Float64:
			if v.Tag == "!!null" {
				return nil
			}
			return &Error{File: file, Line: v.Line, Key: prefix + k.Value, Msg: "want a single value, not a list or mapping"}
		}
		return nil
	}
	if v.Tag == "!!null" {
		return nil
	}
	switch t.Kind() {
	case reflect.Bool:
		var b bool
		if v.Decode(&b) != nil {
			return bad("true or false")
		}
	case reflect.Int, reflect.Int64:
		var i int64
		if v.Decode(&i) != nil {
			return bad("an integer")
		}
	case reflect.Uint64:
		var i uint64
		if v.Decode(&i) != nil {
			return bad("a non-negative integer")
		}
	case reflect.Float64:
		var f float64
		if v.Decode(&f) != nil {
			return bad("a number")
		}
	case reflect.Map, reflect.Struct:
		return bad("a mapping")
	}
	return nil
}

// ApplyGrainFlags merges --grain KEY=VALUE flags into the static grains;
// VALUE is YAML, so `roles=[web, db]` is a list.
func ApplyGrainFlags(c *Minion, flags []string) error {
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return fmt.Errorf("--grain %q: want KEY=VALUE", f)
		}
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil {
			return fmt.Errorf("--grain %s: %w", k, err)
		}
		if c.Grains == nil {
			c.Grains = map[string]any{}
		}
		c.Grains[k] = val
	}
	return nil
}
