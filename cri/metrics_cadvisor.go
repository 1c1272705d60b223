package cri

import (
	"context"
	"strconv"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// The cAdvisor-compatible metrics the kubelet serves on /metrics/cadvisor when it reads stats
// from the runtime (PodAndContainerStatsFromCRI), with cAdvisor's names, help and labels:
// every container metric carries cAdvisor's container labels, some a few more (the device of a
// file system metric, the interface of a network one). Network metrics are the pod's (its
// network namespace), on its sandbox, which cAdvisor names "POD". Values are whole numbers, as
// the CRI carries them: seconds are truncated.

// containerLabels are cAdvisor's container labels: container name, id, image, cgroup name (the
// id here), pod namespace and pod name.
var containerLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

// sample is one value of a metric, with the values of its extra labels.
type sample struct {
	extra []string
	value uint64
}

func one(v uint64) []sample { return []sample{{value: v}} }

// cadvisorMetric is a metric of a container: how to describe it and read it.
type cadvisorMetric struct {
	name, help string
	typ        runtimeapi.MetricType
	extra      []string // label keys beyond containerLabels
	samples    func(c *runtime.ContainerMetrics, at int64) []sample
}

const (
	gauge   = runtimeapi.MetricType_GAUGE
	counter = runtimeapi.MetricType_COUNTER
)

var containerMetrics = []cadvisorMetric{
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			if c.Stats.GetCpu() == nil {
				return nil
			}
			return one(c.Stats.GetCpu().GetUsageCoreNanoSeconds().GetValue() / 1e9)
		}},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.CPUUserNanos / 1e9) }},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.CPUSystemNanos / 1e9) }},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.CFSPeriods) }},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.CFSThrottledPeriods) }},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.CFSThrottledNanos / 1e9) }},

	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", gauge, nil,
		memoryStat(func(m *runtimeapi.MemoryUsage) uint64 { return m.GetUsageBytes().GetValue() })},
	{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil,
		memoryStat(func(m *runtimeapi.MemoryUsage) uint64 { return m.GetWorkingSetBytes().GetValue() })},
	{"container_memory_rss", "Size of RSS in bytes.", gauge, nil,
		memoryStat(func(m *runtimeapi.MemoryUsage) uint64 { return m.GetRssBytes().GetValue() })},
	{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemoryCache) }},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemoryMappedFile) }},
	{"container_memory_swap", "Container swap usage in bytes.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemorySwap) }},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemoryKernel) }},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemoryMaxUsage) }},
	{"container_memory_failcnt", "Number of memory usage hits limits.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemoryFailcnt) }},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"},
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			d := c.Cgroup
			return []sample{
				{[]string{"pgfault", "container"}, d.PageFaults}, {[]string{"pgmajfault", "container"}, d.MajorPageFaults},
				{[]string{"pgfault", "hierarchy"}, d.HierarchyPageFaults}, {[]string{"pgmajfault", "hierarchy"}, d.HierarchyMajorPageFaults},
			}
		}},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", counter, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.OOMKills) }},

	{"container_spec_cpu_period", "CPU period of the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.CPUPeriod) }},
	{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			if c.Cgroup.CPUQuota <= 0 {
				return nil // none
			}
			return one(uint64(c.Cgroup.CPUQuota))
		}},
	{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.CPUShares) }},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemoryLimit) }},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemorySwapLimit) }},
	{"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.MemoryReservation) }},

	{"container_processes", "Number of processes running inside the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Tasks.Processes) }},
	{"container_threads", "Number of threads running inside the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Tasks.Threads) }},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Cgroup.ThreadsMax) }},
	{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Tasks.FileDescriptors) }},
	{"container_sockets", "Number of open sockets for the container.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample { return one(c.Tasks.Sockets) }},
	{"container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice.", gauge, []string{"ulimit"},
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			if c.Tasks.MaxOpenFiles == 0 {
				return nil
			}
			return []sample{{[]string{"max_open_files"}, c.Tasks.MaxOpenFiles}}
		}},

	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"},
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			if c.Stats.GetWritableLayer() == nil {
				return nil
			}
			return []sample{{[]string{c.Filesystem.Device}, c.Stats.GetWritableLayer().GetUsedBytes().GetValue()}}
		}},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"},
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			return []sample{{[]string{c.Filesystem.Device}, c.Filesystem.Bytes}}
		}},
	{"container_fs_inodes_total", "Number of Inodes", gauge, []string{"device"},
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			return []sample{{[]string{c.Filesystem.Device}, c.Filesystem.Inodes}}
		}},
	{"container_fs_inodes_free", "Number of available Inodes", gauge, []string{"device"},
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			return []sample{{[]string{c.Filesystem.Device}, c.Filesystem.InodesFree}}
		}},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read", counter, []string{"device"},
		blkio(func(d runtime.BlkioDevice) uint64 { return d.ReadBytes })},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written", counter, []string{"device"},
		blkio(func(d runtime.BlkioDevice) uint64 { return d.WriteBytes })},
	{"container_fs_reads_total", "Cumulative count of reads completed", counter, []string{"device"},
		blkio(func(d runtime.BlkioDevice) uint64 { return d.Reads })},
	{"container_fs_writes_total", "Cumulative count of writes completed", counter, []string{"device"},
		blkio(func(d runtime.BlkioDevice) uint64 { return d.Writes })},
	{"container_blkio_device_usage_total", "Blkio device bytes usage", counter, []string{"device", "major", "minor", "operation"},
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			var out []sample
			for _, d := range c.Cgroup.Blkio {
				major, minor := strconv.FormatUint(d.Major, 10), strconv.FormatUint(d.Minor, 10)
				out = append(out,
					sample{[]string{d.Name, major, minor, "Read"}, d.ReadBytes},
					sample{[]string{d.Name, major, minor, "Write"}, d.WriteBytes})
			}
			return out
		}},

	{"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", counter, nil,
		pressureSeconds(func(s *runtimeapi.ContainerStats) *runtimeapi.PsiStats { return s.GetCpu().GetPsi() }, false)},
	{"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", counter, nil,
		pressureSeconds(func(s *runtimeapi.ContainerStats) *runtimeapi.PsiStats { return s.GetCpu().GetPsi() }, true)},
	{"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", counter, nil,
		pressureSeconds(func(s *runtimeapi.ContainerStats) *runtimeapi.PsiStats { return s.GetMemory().GetPsi() }, false)},
	{"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", counter, nil,
		pressureSeconds(func(s *runtimeapi.ContainerStats) *runtimeapi.PsiStats { return s.GetMemory().GetPsi() }, true)},
	{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", counter, nil,
		pressureSeconds(func(s *runtimeapi.ContainerStats) *runtimeapi.PsiStats { return s.GetIo().GetPsi() }, false)},
	{"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", counter, nil,
		pressureSeconds(func(s *runtimeapi.ContainerStats) *runtimeapi.PsiStats { return s.GetIo().GetPsi() }, true)},

	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil,
		func(c *runtime.ContainerMetrics, _ int64) []sample {
			return one(uint64(c.Container.State.StartedAt.Unix()))
		}},
	{"container_last_seen", "Last time a container was seen by the exporter", gauge, nil,
		func(_ *runtime.ContainerMetrics, at int64) []sample { return one(uint64(at / 1e9)) }},
}

// memoryStat reads a value of the container's memory stats.
func memoryStat(get func(*runtimeapi.MemoryUsage) uint64) func(*runtime.ContainerMetrics, int64) []sample {
	return func(c *runtime.ContainerMetrics, _ int64) []sample {
		if c.Stats.GetMemory() == nil {
			return nil
		}
		return one(get(c.Stats.GetMemory()))
	}
}

// pressureSeconds reads a total of the container's pressure stall information: the time some
// of its tasks waited, or (full) all of them stalled. None on a node without PSI (cgroup v1).
func pressureSeconds(get func(*runtimeapi.ContainerStats) *runtimeapi.PsiStats, full bool) func(*runtime.ContainerMetrics, int64) []sample {
	return func(c *runtime.ContainerMetrics, _ int64) []sample {
		p := get(c.Stats)
		if p == nil {
			return nil
		}
		d := p.GetSome()
		if full {
			d = p.GetFull()
		}
		return one(d.GetTotal() / 1e9)
	}
}

// blkio reads a counter of each block device the container did I/O on.
func blkio(get func(runtime.BlkioDevice) uint64) func(*runtime.ContainerMetrics, int64) []sample {
	return func(c *runtime.ContainerMetrics, _ int64) []sample {
		var out []sample
		for _, d := range c.Cgroup.Blkio {
			out = append(out, sample{[]string{d.Name}, get(d)})
		}
		return out
	}
}

// networkMetrics are a pod's, by interface.
var networkMetrics = []struct {
	name, help string
	value      func(runtime.InterfaceCounters) uint64
}{
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", func(n runtime.InterfaceCounters) uint64 { return n.RxBytes }},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", func(n runtime.InterfaceCounters) uint64 { return n.RxErrors }},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", func(n runtime.InterfaceCounters) uint64 { return n.RxPackets }},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", func(n runtime.InterfaceCounters) uint64 { return n.RxDropped }},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", func(n runtime.InterfaceCounters) uint64 { return n.TxBytes }},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", func(n runtime.InterfaceCounters) uint64 { return n.TxErrors }},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", func(n runtime.InterfaceCounters) uint64 { return n.TxPackets }},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", func(n runtime.InterfaceCounters) uint64 { return n.TxDropped }},
}

var networkLabels = append(append([]string{}, containerLabels...), "interface")

// ListMetricDescriptors lists the metrics ListPodSandboxMetrics returns.
func (s *RuntimeService) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: metricDescriptors()}, nil
}

func metricDescriptors() []*runtimeapi.MetricDescriptor {
	var out []*runtimeapi.MetricDescriptor
	for _, m := range containerMetrics {
		out = append(out, &runtimeapi.MetricDescriptor{Name: m.name, Help: m.help, LabelKeys: append(append([]string{}, containerLabels...), m.extra...)})
	}
	for _, m := range networkMetrics {
		out = append(out, &runtimeapi.MetricDescriptor{Name: m.name, Help: m.help, LabelKeys: networkLabels})
	}
	return out
}

// ListPodSandboxMetrics returns every ready pod's metrics: its running containers' and its
// network's.
func (s *RuntimeService) ListPodSandboxMetrics(ctx context.Context, _ *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	pods, err := s.stats.ListPodSandboxMetrics(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ListPodSandboxMetricsResponse{}
	for i := range pods {
		resp.PodMetrics = append(resp.PodMetrics, podSandboxMetrics(&pods[i]))
	}
	return resp, nil
}

// podSandboxMetrics turns a pod's readings into its CRI metrics.
func podSandboxMetrics(p *runtime.PodMetrics) *runtimeapi.PodSandboxMetrics {
	md := p.Pod.Config.GetMetadata()
	at := p.At.UnixNano()
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: p.Pod.ID}
	for i := range p.Containers {
		c := &p.Containers[i]
		labels := []string{c.Container.Config.GetMetadata().GetName(), c.Container.ID, c.Container.ImageName, c.Container.ID, md.GetNamespace(), md.GetName()}
		cm := &runtimeapi.ContainerMetrics{ContainerId: c.Container.ID}
		for _, m := range containerMetrics {
			for _, s := range m.samples(c, at) {
				cm.Metrics = append(cm.Metrics, &runtimeapi.Metric{
					Name: m.name, Timestamp: at, MetricType: m.typ,
					LabelValues: append(append([]string{}, labels...), s.extra...), Value: &runtimeapi.UInt64Value{Value: s.value},
				})
			}
		}
		pm.ContainerMetrics = append(pm.ContainerMetrics, cm)
	}
	for _, iface := range p.Interfaces {
		labels := []string{"POD", p.Pod.ID, "", p.Pod.ID, md.GetNamespace(), md.GetName(), iface.Name}
		for _, m := range networkMetrics {
			pm.Metrics = append(pm.Metrics, &runtimeapi.Metric{
				Name: m.name, Timestamp: at, MetricType: counter,
				LabelValues: labels, Value: &runtimeapi.UInt64Value{Value: m.value(iface)},
			})
		}
	}
	return pm
}
