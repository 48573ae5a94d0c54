package metrics

import "github.com/prometheus/client_golang/prometheus"

// CounterFuncWith registers a counter read on each scrape that carries
// fixed labels; several may share a name with different label values
// (one per route class, say).
func (m *Metrics) CounterFuncWith(name, help string, labels map[string]string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
}
