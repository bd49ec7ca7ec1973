package admin

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the endpoint's Prometheus series.
type metrics struct {
	requests   *prometheus.CounterVec
	enrolments *prometheus.CounterVec
	unlocks    *prometheus.CounterVec
	failures   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smimeproxy_admin_requests_total",
			Help: "Admin endpoint requests by route pattern and HTTP status.",
		}, []string{"route", "status"}),
		enrolments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smimeproxy_admin_enrolments_total",
			Help: "Enrolment attempts by result (ok, imported, refused).",
		}, []string{"result"}),
		unlocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smimeproxy_admin_unlocks_total",
			Help: "Unlock attempts by result (ok, refused).",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smimeproxy_admin_failures_total",
			Help: "Failed requests by error code.",
		}, []string{"code"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.enrolments, m.unlocks, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("admin: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) request(route string, status int) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}
func (m *metrics) enrolment(result string) { m.enrolments.WithLabelValues(result).Inc() }
func (m *metrics) unlock(result string)    { m.unlocks.WithLabelValues(result).Inc() }
func (m *metrics) failure(code string)     { m.failures.WithLabelValues(code).Inc() }

func (m *metrics) handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
