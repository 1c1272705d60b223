package runtime

import "github.com/prometheus/client_golang/prometheus"

var (
	podsDesc = prometheus.NewDesc("berth_pods", "Pod sandboxes by state (ready, notready).", []string{"state"}, nil)
	ctrsDesc = prometheus.NewDesc("berth_containers", "Containers by state (created, running, exited).", []string{"state"}, nil)
)

// Collector counts the runtime's pods and containers by state when Prometheus scrapes.
func (r *Runtime) Collector() prometheus.Collector { return collector{r} }

type collector struct{ r *Runtime }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- ctrsDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	pods := map[string]float64{SandboxReady: 0, SandboxNotReady: 0}
	for _, sb := range c.r.sandboxes.list() {
		pods[sb.view().State]++
	}
	for state, n := range pods {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, n, state)
	}
	ctrs := map[string]float64{ContainerCreated: 0, ContainerRunning: 0, ContainerExited: 0}
	for _, ct := range c.r.containers.list("") {
		ctrs[ct.view().State.State]++
	}
	for state, n := range ctrs {
		ch <- prometheus.MustNewConstMetric(ctrsDesc, prometheus.GaugeValue, n, state)
	}
}
