package cri

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// Metrics are the CRI layer's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
}

// NewMetrics registers the CRI metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "cri", Name: "request_duration_seconds",
			Help:    "Latency of CRI calls by method and gRPC code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "cri", Name: "request_errors_total",
			Help: "CRI calls that returned an error, by method and gRPC code.",
		}, []string{"method", "code"}),
	}
	reg.MustRegister(m.latency, m.errors)
	return m
}

func (m *Metrics) observe(method string, code codes.Code, d time.Duration) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(method, code.String()).Observe(d.Seconds())
	if code != codes.OK {
		m.errors.WithLabelValues(method, code.String()).Inc()
	}
}
