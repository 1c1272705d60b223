package image

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the image service's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	pulls   *prometheus.CounterVec
	bytes   prometheus.Counter
	seconds prometheus.Histogram
}

// NewMetrics registers the image metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "image", Name: "pulls_total",
			Help: "Image pulls by result (success or failure); pulls that joined another are not counted.",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "image", Name: "pull_bytes_total",
			Help: "Bytes received from registries.",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "image", Name: "pull_duration_seconds",
			Help:    "Time to pull and unpack an image.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
	}
	reg.MustRegister(m.pulls, m.bytes, m.seconds)
	for _, result := range []string{"success", "failure"} {
		m.pulls.WithLabelValues(result) // both series exist from the start, at 0
	}
	return m
}

func (m *Metrics) pulled(ok bool, bytes int64, d time.Duration) {
	if m == nil {
		return
	}
	result := "success"
	if !ok {
		result = "failure"
	}
	m.pulls.WithLabelValues(result).Inc()
	m.bytes.Add(float64(bytes))
	if ok {
		m.seconds.Observe(d.Seconds())
	}
}
