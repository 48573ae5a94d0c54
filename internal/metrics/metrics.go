// Package metrics holds the Prometheus metrics of auth-server and serves
// them in the text exposition format.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry with the service's metrics.
type Metrics struct {
	reg *prometheus.Registry
	// Unauthenticated counts requests refused before a tenant was known,
	// by reason (missing_header, bad_header, bad_key, bad_token).
	Unauthenticated *prometheus.CounterVec

	ops ops // requests, decisions, breakers (ops.go)
}

// New returns a registry with the Go and process collectors and the
// service's own metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg,
		Unauthenticated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_unauthenticated_requests_total",
			Help: "Requests refused before a tenant was known, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.Unauthenticated)
	m.ops = newOps(reg)
	return m
}

// GaugeFunc registers a gauge whose value is read on each scrape.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc registers a counter whose value is read on each scrape.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
