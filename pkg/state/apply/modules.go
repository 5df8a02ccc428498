package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/brine-cm/brine/pkg/state"
	"github.com/brine-cm/brine/pkg/state/cmd"
	"github.com/brine-cm/brine/pkg/state/file"
	"github.com/brine-cm/brine/pkg/state/git"
	"github.com/brine-cm/brine/pkg/state/host"
	"github.com/brine-cm/brine/pkg/state/mongodb"
	pkgstate "github.com/brine-cm/brine/pkg/state/pkg"
	"github.com/brine-cm/brine/pkg/state/service"
)

// MongoDialer connects mongodb.* states to a server.
type MongoDialer func(ctx context.Context, o mongodb.DialOptions) (mongodb.Client, error)

// Default returns every built-in module. Modules read env at call time,
// so one registry serves test and real runs alike.
func Default(env *Env) Registry {
	_ = env
	return Registry{
		"host.present":    hostModule{},
		"host.absent":     hostModule{absent: true},
		"file.managed":    fileModule{build: buildManaged},
		"file.directory":  fileModule{build: buildDirectory},
		"file.symlink":    fileModule{build: buildSymlink},
		"file.absent":     fileModule{build: buildAbsent},
		"cmd.run":         cmdModule{},
		"cmd.wait":        cmdModule{wait: true},
		"git.latest":      gitModule{},
		"service.running": serviceModule{running: true},
		"service.dead":    serviceModule{},
		"pkg.installed":   pkgModule{},
		"mongodb.replset": mongoModule{},
	}
}

// ---- host ----

type hostModule struct{ absent bool }

func (h hostModule) edit(c state.Chunk) (host.Edit, error) {
	a := newArgs(c)
	e := host.Edit{Absent: h.absent, Name: c.Name, IPs: a.list("ip"), Clean: a.boolean("clean", false)}
	return e, a.err
}

func hostsFile(env *Env) string {
	if env.HostsFile != "" {
		return env.HostsFile
	}
	return host.DefaultPath
}

func describe(e host.Edit) string {
	if len(e.IPs) == 0 {
		return e.Name
	}
	return fmt.Sprintf("%s (%s)", e.Name, strings.Join(e.IPs, ", "))
}

func (h hostModule) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	e, err := h.edit(c)
	if err != nil {
		return Plan{}, err
	}
	ch, err := host.Check(hostsFile(env), e)
	if err != nil {
		return Plan{}, err
	}
	if ch.Empty() {
		if h.absent {
			return Plan{Comment: fmt.Sprintf("Host %s already absent", describe(e))}, nil
		}
		return Plan{Comment: fmt.Sprintf("Host %s already present", describe(e))}, nil
	}
	verb := "added"
	if h.absent {
		verb = "removed"
	}
	return Plan{Changes: ch.Map(), Comment: fmt.Sprintf("Host %s would be %s", describe(e), verb), Data: e}, nil
}

func (h hostModule) Apply(ctx context.Context, env *Env, c state.Chunk, p Plan) (map[string]any, string, error) {
	e := p.Data.(host.Edit)
	ch, err := host.Update(ctx, hostsFile(env), e)
	if err != nil {
		return nil, "", err
	}
	verb := "Added"
	if h.absent {
		verb = "Removed"
	}
	comment := fmt.Sprintf("%s host %s", verb, describe(e))
	if ch.Method != "" {
		comment += " (" + ch.Method + ")"
	}
	return ch.Map(), comment, nil
}

// ---- file ----

type fileState interface {
	Check() (file.Result, error)
	Apply() (file.Result, error)
}

type fileModule struct {
	build func(c state.Chunk, a *args) fileState
}

func (f fileModule) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	a := newArgs(c)
	s := f.build(c, a)
	if a.err != nil {
		return Plan{}, a.err
	}
	r, err := s.Check()
	if err != nil {
		return Plan{}, err
	}
	return Plan{Changes: r.Changes, Comment: r.Comment, Data: s}, nil
}

func (f fileModule) Apply(ctx context.Context, env *Env, c state.Chunk, p Plan) (map[string]any, string, error) {
	r, err := p.Data.(fileState).Apply()
	return r.Changes, r.Comment, err
}

func (a *args) mode(key string) *fs.FileMode {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	m, err := file.ParseMode(v)
	if err != nil {
		a.fail(key, "%v", err)
		return nil
	}
	return &m
}

func buildManaged(c state.Chunk, a *args) fileState {
	m := file.Managed{
		Path: c.Name, Mode: a.mode("mode"), User: a.str("user", ""), Group: a.str("group", ""),
		Makedirs: a.boolean("makedirs", false), Replace: a.boolean("replace", true),
	}
	if a.has("contents") {
		// Salt joins a list of lines with newlines.
		s := strings.Join(a.list("contents"), "\n")
		if s != "" && a.boolean("contents_newline", true) && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		m.Contents = &s
	} else {
		for _, k := range []string{"source", "contents_pillar", "contents_grains", "template"} {
			if a.has(k) {
				a.fail(k, "must be resolved by the master into contents before the chunk reaches the minion")
			}
		}
	}
	return m
}

func buildDirectory(c state.Chunk, a *args) fileState {
	mode := a.mode("mode")
	if mode == nil {
		mode = a.mode("dir_mode")
	}
	return file.Directory{Path: c.Name, Mode: mode, User: a.str("user", ""), Group: a.str("group", ""), Makedirs: a.boolean("makedirs", false)}
}

func buildSymlink(c state.Chunk, a *args) fileState {
	t := a.str("target", "")
	if t == "" {
		a.fail("target", "is required")
	}
	return file.Symlink{Path: c.Name, Target: t, Force: a.boolean("force", false), Makedirs: a.boolean("makedirs", false),
		User: a.str("user", ""), Group: a.str("group", "")}
}

func buildAbsent(c state.Chunk, a *args) fileState { return file.Absent{Path: c.Name} }

// ---- cmd ----

type cmdModule struct{ wait bool }

func (cmdModule) spec(c state.Chunk) (cmd.Spec, error) {
	a := newArgs(c)
	s := cmd.Spec{
		Name: c.Name, Shell: a.str("shell", ""), Unless: a.list("unless"), OnlyIf: a.list("onlyif"),
		Creates: a.list("creates"), Cwd: a.str("cwd", ""), Env: a.envList("env"), RunAs: a.str("runas", ""),
		Timeout: a.seconds("timeout"),
	}
	if s.Name == "" {
		a.fail("name", "the command is empty")
	}
	return s, a.err
}

func (m cmdModule) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	s, err := m.spec(c)
	if err != nil {
		return Plan{}, err
	}
	if m.wait {
		// cmd.wait only ever runs from a fired watch.
		return Plan{}, nil
	}
	run, comment, err := s.ShouldRun(ctx)
	if err != nil {
		return Plan{}, err
	}
	if !run {
		return Plan{Comment: comment, SkipWatch: true}, nil
	}
	return Plan{Changes: map[string]any{"command": c.Name}, Comment: fmt.Sprintf("Command %q would have been executed", c.Name), Data: s}, nil
}

func (m cmdModule) Apply(ctx context.Context, env *Env, c state.Chunk, p Plan) (map[string]any, string, error) {
	return runCmd(ctx, p.Data.(cmd.Spec))
}

func runCmd(ctx context.Context, s cmd.Spec) (map[string]any, string, error) {
	out, err := s.Run(ctx)
	comment := fmt.Sprintf("Command %q run", s.Name)
	if err != nil {
		if out.PID == 0 {
			return nil, "", err
		}
		return out.Map(), comment, err
	}
	if out.Retcode != 0 {
		return out.Map(), comment, fmt.Errorf("retcode %d", out.Retcode)
	}
	return out.Map(), comment, nil
}

// Watch runs the command (its checks still apply), as Salt's cmd mod_watch.
func (m cmdModule) Watch(ctx context.Context, env *Env, c state.Chunk) (map[string]any, string, error) {
	s, err := m.spec(c)
	if err != nil {
		return nil, "", err
	}
	run, comment, err := s.ShouldRun(ctx)
	if err != nil || !run {
		return nil, comment, err
	}
	if env.Test {
		return map[string]any{"command": c.Name}, fmt.Sprintf("Command %q would have been executed", c.Name), nil
	}
	return runCmd(ctx, s)
}

// ---- git ----

type gitModule struct{}

func (gitModule) spec(c state.Chunk) (git.Spec, error) {
	a := newArgs(c)
	s := git.Spec{URL: c.Name, Target: a.str("target", ""), Rev: a.str("rev", ""), Branch: a.str("branch", ""),
		Remote: a.str("remote", ""), Depth: a.integer("depth", 0), User: a.str("user", "")}
	if s.Target == "" {
		a.fail("target", "is required")
	}
	// Salt also takes force_reset: remote-changes; both mean "may reset".
	if v, ok := a.get("force_reset"); ok {
		if str, isStr := v.(string); isStr && str == "remote-changes" {
			s.ForceReset = true
		} else {
			s.ForceReset = a.boolean("force_reset", false)
		}
	}
	for _, k := range []string{"identity", "https_user", "https_pass"} {
		if a.has(k) {
			a.fail(k, "is not supported by brine's git.latest; configure ssh or a credential helper for the user instead")
		}
	}
	return s, a.err
}

func (g gitModule) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	s, err := g.spec(c)
	if err != nil {
		return Plan{}, err
	}
	ch, comment, err := s.Check(ctx)
	return Plan{Changes: ch, Comment: comment, Data: s}, err
}

func (gitModule) Apply(ctx context.Context, env *Env, c state.Chunk, p Plan) (map[string]any, string, error) {
	return p.Data.(git.Spec).Apply(ctx)
}

// ---- service ----

type serviceModule struct{ running bool }

func (m serviceModule) spec(c state.Chunk) (service.Spec, error) {
	a := newArgs(c)
	s := service.Spec{Name: c.Name, Running: m.running, Enable: a.optBool("enable"), Reload: a.boolean("reload", false), Sig: a.str("sig", "")}
	return s, a.err
}

func manager(env *Env) service.Manager { return service.Detect(env.SystemdDir, env.InitDir) }

func (m serviceModule) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	s, err := m.spec(c)
	if err != nil {
		return Plan{}, err
	}
	ch, comment, err := s.Check(ctx, manager(env))
	return Plan{Changes: ch, Comment: comment, Data: s}, err
}

func (serviceModule) Apply(ctx context.Context, env *Env, c state.Chunk, p Plan) (map[string]any, string, error) {
	return p.Data.(service.Spec).Apply(ctx, manager(env))
}

// Watch restarts (or reloads) as Salt's service mod_watch.
func (m serviceModule) Watch(ctx context.Context, env *Env, c state.Chunk) (map[string]any, string, error) {
	s, err := m.spec(c)
	if err != nil {
		return nil, "", err
	}
	return s.Watch(ctx, manager(env), env.Test)
}

// ---- pkg ----

type pkgModule struct{}

func (pkgModule) wants(c state.Chunk) ([]pkgstate.Want, bool, error) {
	a := newArgs(c)
	var ws []pkgstate.Want
	if v, ok := a.get("pkgs"); ok {
		l, isList := v.([]any)
		if !isList {
			a.fail("pkgs", "want a list, got %T", v)
		}
		for i, e := range l {
			switch x := e.(type) {
			case string:
				ws = append(ws, pkgstate.Want{Name: x})
			case map[string]any:
				// - nginx: 1.22.1-9
				if len(x) != 1 {
					a.fail("pkgs", "item %d: want `name: version` with one key", i)
				}
				for n, ver := range x {
					s, _ := scalar(ver)
					if ver == nil {
						s = ""
					}
					ws = append(ws, pkgstate.Want{Name: n, Version: s})
				}
			default:
				a.fail("pkgs", "item %d: want a name or `name: version`, got %T", i, e)
			}
		}
	} else {
		ws = []pkgstate.Want{{Name: c.Name, Version: a.str("version", "")}}
	}
	refresh := a.boolean("refresh", false)
	return ws, refresh, a.err
}

func (p pkgModule) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	ws, _, err := p.wants(c)
	if err != nil {
		return Plan{}, err
	}
	ch, comment, err := pkgstate.Tools{}.Check(ctx, ws)
	return Plan{Changes: ch, Comment: comment}, err
}

func (p pkgModule) Apply(ctx context.Context, env *Env, c state.Chunk, _ Plan) (map[string]any, string, error) {
	ws, refresh, err := p.wants(c)
	if err != nil {
		return nil, "", err
	}
	return pkgstate.Tools{}.Install(ctx, ws, refresh)
}

// ---- mongodb ----

type mongoModule struct{}

func (mongoModule) spec(c state.Chunk) (mongodb.Spec, mongodb.DialOptions, error) {
	a := newArgs(c)
	s := mongodb.Spec{Name: c.Name, Settings: a.dict("settings")}
	o := mongodb.DialOptions{Host: a.str("host", mongodb.DefaultHost), User: a.str("user", ""),
		Password: a.str("password", ""), AuthSource: a.str("authdb", ""), Timeout: a.seconds("timeout")}
	v, _ := a.get("members")
	l, ok := v.([]any)
	if !ok {
		a.fail("members", "want a list of {_id, host} mappings, got %T", v)
	}
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			// A bare "host:port" string is a member with an assigned _id.
			if h, isStr := e.(string); isStr {
				s.Members = append(s.Members, mongodb.Member{ID: -1, Host: h})
				continue
			}
			a.fail("members", "item %d: want a mapping, got %T", i, e)
			continue
		}
		mem := mongodb.Member{ID: -1, Options: map[string]any{}}
		for k, val := range m {
			switch k {
			case "_id":
				id, ok := val.(int)
				if f, isF := val.(float64); isF && f == float64(int(f)) {
					id, ok = int(f), true
				}
				if i64, isI := val.(int64); isI {
					id, ok = int(i64), true
				}
				if !ok || id < 0 {
					a.fail("members", "item %d: _id must be a non-negative integer", i)
				}
				mem.ID = id
			case "host":
				mem.Host, _ = val.(string)
			default:
				mem.Options[k] = val
			}
		}
		s.Members = append(s.Members, mem)
	}
	return s, o, a.err
}

func dial(ctx context.Context, env *Env, o mongodb.DialOptions) (mongodb.Client, error) {
	d := env.MongoDial
	if d == nil {
		d = mongodb.Dial
	}
	return d(ctx, o)
}

func (m mongoModule) Check(ctx context.Context, env *Env, c state.Chunk) (Plan, error) {
	s, o, err := m.spec(c)
	if err != nil {
		return Plan{}, err
	}
	cl, err := dial(ctx, env, o)
	if err != nil {
		return Plan{}, err
	}
	defer cl.Close(context.WithoutCancel(ctx))
	ch, comment, _, _, err := s.Check(ctx, cl)
	if err != nil {
		if env.Test && !errors.Is(err, mongodb.ErrNotInitialized) {
			err = fmt.Errorf("%w (test=True still reads the current config to predict changes)", err)
		}
		return Plan{}, err
	}
	return Plan{Changes: ch, Comment: comment}, nil
}

func (m mongoModule) Apply(ctx context.Context, env *Env, c state.Chunk, _ Plan) (map[string]any, string, error) {
	s, o, err := m.spec(c)
	if err != nil {
		return nil, "", err
	}
	cl, err := dial(ctx, env, o)
	if err != nil {
		return nil, "", err
	}
	defer cl.Close(context.WithoutCancel(ctx))
	return s.Apply(ctx, cl)
}
