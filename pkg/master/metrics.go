package master

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the master's Prometheus series. Each master has its own
// registry so several masters can live in one test process.
type metrics struct {
	reg          *prometheus.Registry
	jobsStarted  prometheus.Counter
	jobsFinished prometheus.Counter
	jobsTimedOut prometheus.Counter
	returns      *prometheus.CounterVec
	events       *prometheus.CounterVec
	eventsDrop   prometheus.Counter
	webhook      *prometheus.CounterVec
	renderSecs   prometheus.Histogram
	applySecs    prometheus.Histogram
	// refused counts what the minion port turned away, by reason (see
	// refuse in link.go): the figure an operator alerts on when a minion
	// misbehaves or the port is flooded.
	refused *prometheus.CounterVec

	// The label values of returns and events are a fixed set, resolved
	// once: every job return and every bus event counts without hashing
	// its labels and locking the vector. Read-only after newMetrics.
	returnsOK, returnsFailed prometheus.Counter
	eventsBy                 map[string]prometheus.Counter
}

// eventPrefixes are the label values of brine_events_total.
var eventPrefixes = []string{"minion", "key", "job", "mine", "reactor", "hook", "salt", "custom"}

func newMetrics() *metrics {
	mt := &metrics{
		reg:          prometheus.NewRegistry(),
		jobsStarted:  prometheus.NewCounter(prometheus.CounterOpts{Name: "brine_jobs_started_total", Help: "Jobs published."}),
		jobsFinished: prometheus.NewCounter(prometheus.CounterOpts{Name: "brine_jobs_finished_total", Help: "Synchronous jobs whose wait ended."}),
		jobsTimedOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "brine_jobs_timed_out_total", Help: "Jobs where some minion did not return in time."}),
		returns:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "brine_returns_total", Help: "Job returns by outcome."}, []string{"outcome"}),
		events:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "brine_events_total", Help: "Events published, by the first part of the tag."}, []string{"prefix"}),
		eventsDrop:   prometheus.NewCounter(prometheus.CounterOpts{Name: "brine_events_dropped_total", Help: "Events a slow subscriber lost."}),
		webhook:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "brine_webhook_requests_total", Help: "Webhook requests by result."}, []string{"result"}),
		renderSecs:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "brine_state_render_seconds", Help: "Time to render and compile states for one minion."}),
		applySecs:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "brine_state_apply_seconds", Help: "Time a minion reported for applying states."}),
		refused:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "brine_minion_refused_total", Help: "Connections and messages the minion port refused, by reason."}, []string{"reason"}),
	}
	mt.reg.MustRegister(mt.jobsStarted, mt.jobsFinished, mt.jobsTimedOut, mt.returns, mt.events, mt.eventsDrop,
		mt.webhook, mt.renderSecs, mt.applySecs, mt.refused,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	mt.returnsOK = mt.returns.WithLabelValues("success")
	mt.returnsFailed = mt.returns.WithLabelValues("failure")
	mt.eventsBy = make(map[string]prometheus.Counter, len(eventPrefixes))
	for _, p := range eventPrefixes {
		mt.eventsBy[p] = mt.events.WithLabelValues(p)
	}
	return mt
}

func (mt *metrics) jobStarted()  { mt.jobsStarted.Inc() }
func (mt *metrics) jobFinished() { mt.jobsFinished.Inc() }
func (mt *metrics) jobTimedOut() { mt.jobsTimedOut.Inc() }
func (mt *metrics) returned(ok bool) {
	if ok {
		mt.returnsOK.Inc()
	} else {
		mt.returnsFailed.Inc()
	}
}

func (mt *metrics) event(tag string) {
	prefix, _, _ := strings.Cut(tag, "/")
	if prefix == "salt" && strings.HasPrefix(tag, "salt/netapi/hook/") {
		prefix = "hook"
	}
	c, ok := mt.eventsBy[prefix]
	if !ok {
		c = mt.eventsBy["custom"] // bounded label values: tags are user input
	}
	c.Inc()
}

// gauges read live state at scrape time.
func (m *Master) registerGauges() {
	mt := m.metrics
	mt.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "brine_minions_connected", Help: "Minions with a live stream."},
		func() float64 { m.mu.Lock(); defer m.mu.Unlock(); return float64(len(m.conns)) }))
	for _, st := range []string{"accepted", "pending", "rejected", "denied"} {
		st := st
		mt.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "brine_keys", Help: "Minion keys by state.", ConstLabels: prometheus.Labels{"state": st}},
			func() float64 { return float64(m.keyCount(st)) }))
	}
}

// MetricsHandler serves /metrics.
func (m *Master) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(m.metrics.reg, promhttp.HandlerOpts{})
}
