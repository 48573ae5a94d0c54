package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ourway/auth/internal/breaker"
)

// ops are the request, decision and breaker metrics.
type ops struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	// series remembers the series of each (route, method, code) and
	// (kind, decision): every request counts itself, and finding a series
	// in its vector hashes the labels and takes the vector's lock.
	series *sync.Map // requestKey → requestSeries, decisionKey → prometheus.Counter
}

type requestKey struct {
	route, method string
	code          int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type decisionKey struct {
	kind    string
	allowed bool
}

func newOps(reg *prometheus.Registry) ops {
	o := ops{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auth_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_decisions_total",
			Help: "Authorization checks answered, by kind of check and decision (allowed or denied).",
		}, []string{"kind", "decision"}),
	}
	reg.MustRegister(o.requests, o.duration, o.decisions)
	o.series = new(sync.Map)
	return o
}

// ObserveRequest counts one answered request. route must be a route
// pattern or one fixed word such as "unmatched" (never the raw path, which
// would make a series per user name). The method and the status code are
// labelled from fixed sets (see MethodLabel and CodeLabel), so that no
// client can add series by inventing methods.
func (m *Metrics) ObserveRequest(route, method string, code int, took time.Duration) {
	if code < 100 || code > 599 {
		code = 0 // "other": the keys stay as few as the label values
	}
	k := requestKey{route, MethodLabel(method), code}
	s, ok := m.ops.series.Load(k)
	if !ok {
		s, _ = m.ops.series.LoadOrStore(k, requestSeries{
			count:    m.ops.requests.WithLabelValues(route, k.method, CodeLabel(code)),
			duration: m.ops.duration.WithLabelValues(route, k.method),
		})
	}
	rs := s.(requestSeries)
	rs.count.Inc()
	rs.duration.Observe(took.Seconds())
}

// MethodLabel is the label value of an HTTP method: the method itself when
// it is one of the nine that HTTP defines, "OTHER" for anything a client
// made up.
func MethodLabel(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE":
		return method
	}
	return "OTHER"
}

// CodeLabel is the label value of a status code: the code when it is a
// valid one (100–599), "other" otherwise.
func CodeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// Decision counts one check's decision.
func (m *Metrics) Decision(kind string, allowed bool) {
	k := decisionKey{kind, allowed}
	c, ok := m.ops.series.Load(k)
	if !ok {
		d := "denied"
		if allowed {
			d = "allowed"
		}
		c, _ = m.ops.series.LoadOrStore(k, m.ops.decisions.WithLabelValues(kind, d))
	}
	c.(prometheus.Counter).Inc()
}

// Breaker exports a circuit breaker: its state (0 closed, 1 half-open,
// 2 open), the calls it rejected and the failures it counted.
func (m *Metrics) Breaker(b *breaker.Breaker) {
	labels := prometheus.Labels{"breaker": b.Name()}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "auth_breaker_state", ConstLabels: labels,
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, func() float64 { return float64(b.State()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "auth_breaker_rejections_total", ConstLabels: labels,
			Help: "Calls a circuit breaker failed fast without calling its dependency.",
		}, func() float64 { return float64(b.Rejected()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "auth_breaker_failures_total", ConstLabels: labels,
			Help: "Infrastructure failures a circuit breaker counted against its dependency.",
		}, func() float64 { return float64(b.Failures()) }),
	)
}
