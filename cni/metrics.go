package cni

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the CNI operations' Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	seconds *prometheus.HistogramVec
}

// NewMetrics registers the CNI metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "berth", Subsystem: "cni", Name: "operation_duration_seconds",
		Help:    "Time of CNI ADD and DEL of a pod's network, by operation and result (success or failure).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	}, []string{"operation", "result"})}
	reg.MustRegister(m.seconds)
	return m
}

func (m *Metrics) observe(op string, start time.Time, err error) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.seconds.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}
