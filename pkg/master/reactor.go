package master

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/config"
	"github.com/brine-cm/brine/pkg/job"
	"github.com/brine-cm/brine/pkg/pyrender"
	"github.com/brine-cm/brine/pkg/reactor"
	"github.com/brine-cm/brine/pkg/webhook"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// setupReactor builds the reactor (always: it also owns the webhook's
// durable spool) and the webhook server when configured.
func (m *Master) setupReactor() error {
	rules, err := reactor.ParseRules(m.cfg.Reactor)
	if err != nil {
		return fmt.Errorf("master config reactor: %w", err)
	}
	opts, err := m.cfg.Opts()
	if err != nil {
		return err
	}
	r, err := reactor.New(reactor.Config{
		Rules: rules, Workers: m.cfg.ReactorWorkerThreads, QueueHighWater: m.cfg.ReactorWorkerHWM,
		SpoolDir: filepath.Join(m.cfg.DataDir, "reactor"), Secrets: m.cfg.ReactorSecrets,
		FileRoots: m.cfg.FileRoots["base"],
		Opts:      opts,
		PyLimits: pyrender.Limits{MaxSteps: m.cfg.ReactorPyMaxSteps,
			Timeout: time.Duration(m.cfg.ReactorPyTimeout * float64(time.Second))},
	}, m.reactorBus(), m.timedLocal(), m.log.With("component", "reactor"))
	if err != nil {
		return fmt.Errorf("reactor: %w", err)
	}
	m.reactor = r
	m.runners["reactor.list"] = func(ctx context.Context, _ []any, _ map[string]any) (any, error) {
		out := []any{}
		for _, rule := range m.reactor.Rules() {
			files := []any{}
			for _, f := range rule.Files {
				files = append(files, f)
			}
			out = append(out, map[string]any{"tag": rule.TagGlob, "files": files})
		}
		return out, nil
	}
	m.statusHooks["reactor"] = func() any {
		st := m.reactor.Stats()
		return map[string]any{"queue_depth": st.QueueDepth, "high_water": st.HighWater, "overflow": st.Overflow,
			"spooled": st.Spooled, "reactions": st.Reactions, "bus_dropped": st.BusDropped}
	}
	m.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "brine_reactor_queue_depth", Help: "Reactions waiting for a worker."},
		func() float64 { return float64(m.reactor.Stats().QueueDepth) }))
	m.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "brine_reactor_overflow_total", Help: "Events not reacted to because the queue was at its high-water mark."},
		func() float64 { return float64(m.reactor.Stats().Overflow) }))
	for _, outcome := range []string{"started", "failed"} {
		outcome := outcome
		m.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "brine_reactions_total", Help: "Reactions by outcome.", ConstLabels: prometheus.Labels{"outcome": outcome}},
			func() float64 { return float64(m.reactor.Stats().Reactions[outcome]) }))
	}
	if m.cfg.Webhook != nil && m.cfg.Webhook.Listen != "" {
		hooks := map[string]webhook.HookRule{}
		for glob, h := range m.cfg.Webhook.Hooks {
			hooks[glob] = webhook.HookRule{GitHubSecretFile: h.GitHubSecretFile, AllowSHA1: h.AllowSHA1, BearerTokenFile: h.BearerTokenFile,
				AllowUnauthenticated: h.AllowUnauthenticated}
		}
		w := m.cfg.Webhook
		srv, err := webhook.New(webhook.Config{
			Listen: w.Listen, TLSCert: w.TLSCert, TLSKey: w.TLSKey, MaxBodyBytes: w.MaxBodyBytes, Hooks: hooks,
			AllowUnauthenticated: w.AllowUnauthenticated, ReplayWindow: time.Duration(w.ReplayWindow * float64(time.Second)),
			OnResult: func(result string) { m.metrics.webhook.WithLabelValues(result).Inc() },
		}, m.hookSink(r), m.bus, m.log.With("component", "webhook"))
		if err != nil {
			return fmt.Errorf("master config webhook: %w", err)
		}
		m.webhook = srv
	}
	return nil
}

// timedLocal is the master as the reactor's Local. It is a
// reactor.Preparer, and times each publish by stage: reactions to one
// tag send one after another, so the send time bounds how many hooks a
// second one hook path can take.
func (m *Master) timedLocal() reactor.Local {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "brine_reactor_publish_seconds",
		Help:    "Time a reaction's job publish took, by stage: prepare (target, jid, job cache; in parallel), send (announce and deliver; in the tag's order), whole (both, where not prepared).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"stage"})
	m.metrics.reg.MustRegister(h)
	return timedLocal{m: m, prepare: h.WithLabelValues("prepare"), send: h.WithLabelValues("send"), whole: h.WithLabelValues("whole")}
}

type timedLocal struct {
	m                    *Master
	prepare, send, whole prometheus.Observer
}

func (t timedLocal) PublishAsync(ctx context.Context, tgt, tgtType, fun string, args []any, kwargs map[string]any, user string) (string, error) {
	start := time.Now()
	jid, err := t.m.PublishAsync(ctx, tgt, tgtType, fun, args, kwargs, user)
	t.whole.Observe(time.Since(start).Seconds())
	return jid, err
}

// PreparePublish is PublishAsync (start in publish.go) cut in two: the
// target, the jid and the job cache record here, the job/<jid>/new event
// and the delivery in Send. In a cluster it declines (nil, nil), and the
// reactor publishes whole: routing to other masters happens in start only.
func (t timedLocal) PreparePublish(ctx context.Context, tgt, tgtType, fun string, args []any, kwargs map[string]any, user string) (reactor.Prepared, error) {
	m := t.m
	if m.cluster != nil {
		return nil, nil
	}
	begin := time.Now()
	if tgtType == "" {
		tgtType = "glob"
	}
	if fun == "" {
		return nil, &InvalidTargetError{errors.New("no function given")}
	}
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	wargs, wkwargs, err := jobArgs(args, kwargs)
	if err != nil {
		return nil, err
	}
	ids, err := m.resolve(tgt, tgtType)
	if err != nil {
		return nil, err
	}
	jid, err := m.newJID(ctx)
	if err != nil {
		return nil, err
	}
	rec := job.Job{JID: jid, Fun: fun, Args: args, Kwargs: kwargs, Target: tgt, TgtType: tgtType,
		User: user, Minions: ids, StartTime: time.Now().UTC()}
	m.mu.Lock()
	for _, id := range ids {
		if m.conns[id] == nil {
			rec.Offline = append(rec.Offline, id)
		}
	}
	m.mu.Unlock()
	if err := m.jobs.SaveJob(ctx, rec); err != nil {
		m.log.Error("job cache", "jid", jid, "err", err)
	}
	t.prepare.Observe(time.Since(begin).Seconds())
	return &reactorJob{t: t, rec: rec, args: wargs, kwargs: wkwargs}, nil
}

// reactorJob is a reaction's job, saved and not yet announced or sent.
type reactorJob struct {
	t      timedLocal
	rec    job.Job
	args   *structpb.ListValue
	kwargs *structpb.Struct
}

func (j *reactorJob) Send(ctx context.Context) (string, error) {
	begin := time.Now()
	m, rec := j.t.m, j.rec
	m.announceJob(rec)
	m.mu.Lock()
	live := make([]*conn, 0, len(rec.Minions))
	for _, id := range rec.Minions {
		if c := m.conns[id]; c != nil {
			live = append(live, c)
		}
	}
	m.mu.Unlock()
	for _, c := range live {
		// A job of its own per minion: a preparer (state.apply) fills it in.
		m.deliver(ctx, c, &pb.Job{Jid: rec.JID, Fun: rec.Fun, Args: j.args, Kwargs: j.kwargs, User: rec.User})
	}
	j.t.send.Observe(time.Since(begin).Seconds())
	return rec.JID, nil
}

// Cancel leaves the saved job in the cache, targeted and never run, as a
// job whose minions were all offline.
func (j *reactorJob) Cancel() {}

func (m *Master) startReactor(ctx context.Context) {
	go func() {
		if err := m.reactor.Run(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("reactor stopped", "err", err)
		}
	}()
	if m.webhook != nil {
		go func() {
			if err := m.webhook.ListenAndServe(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
				m.log.Error("webhook stopped", "err", err)
			}
		}()
	}
	if m.cfg.MetricsListen != "" {
		srv := &http.Server{Addr: m.cfg.MetricsListen, ReadHeaderTimeout: 5 * time.Second}
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.MetricsHandler())
		if m.cfg.MetricsPprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			m.log.Warn("serving /debug/pprof on the metrics listener", "addr", m.cfg.MetricsListen)
		}
		srv.Handler = mux
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error("metrics endpoint stopped", "err", err)
			}
		}()
		m.closers = append(m.closers, func() { srv.Close() })
	}
}

// WebhookAddr is the webhook's listening address once started ("" if off).
func (m *Master) WebhookAddr() string {
	if m.webhook == nil || m.webhook.Addr() == nil {
		return ""
	}
	return m.webhook.Addr().String()
}

// Reload re-reads the config file (SIGHUP): reactor rules, file and pillar
// roots, mine settings. Minion streams and the listeners are untouched; a
// config that does not load leaves everything as it was.
func (m *Master) Reload() error {
	if m.configPath == "" {
		return errors.New("reload: master was started without a config file")
	}
	cfg, err := config.LoadMaster(m.configPath, true)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	rules, err := reactor.ParseRules(cfg.Reactor)
	if err != nil {
		return fmt.Errorf("reload: reactor: %w", err)
	}
	opts, err := cfg.Opts()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	m.reactor.SetRules(rules)
	m.reactor.SetOpts(opts)
	m.clusterSetRules(rules)
	m.mu.Lock()
	m.cfg.FileRoots, m.cfg.PillarRoots = cfg.FileRoots, cfg.PillarRoots
	m.cfg.MineFunctions, m.cfg.MineInterval = cfg.MineFunctions, cfg.MineInterval
	m.mu.Unlock()
	m.tree.Store(m.newTree())
	m.log.Info("configuration reloaded", "reactor_rules", len(rules))
	m.publish("brine/master/reload", map[string]any{"reactor_rules": len(rules)})
	return nil
}

// Drain finishes running reactions before shutdown (SIGTERM).
func (m *Master) Drain(ctx context.Context) error {
	if m.reactor == nil {
		return nil
	}
	if err := m.clusterDrain(ctx); err != nil {
		return err
	}
	return m.reactor.Drain(ctx)
}
