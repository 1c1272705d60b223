package cri

import (
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// cadvisorNames are the container metrics of cAdvisor's /metrics/cadvisor that a cgroup v1 node
// without hugetlb reports (critest v1.37's list less pressure stall and hugetlb metrics).
var cadvisorNames = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
	"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
	"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
	"container_fs_writes_bytes_total", "container_fs_writes_total", "container_last_seen", "container_memory_cache",
	"container_memory_failcnt", "container_memory_failures_total", "container_memory_kernel_usage", "container_memory_mapped_file",
	"container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap", "container_memory_usage_bytes",
	"container_memory_working_set_bytes", "container_network_receive_bytes_total", "container_network_receive_errors_total",
	"container_network_receive_packets_dropped_total", "container_network_receive_packets_total", "container_network_transmit_bytes_total",
	"container_network_transmit_errors_total", "container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total",
	"container_oom_events_total", "container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_quota",
	"container_spec_cpu_shares", "container_spec_memory_limit_bytes", "container_spec_memory_reservation_limit_bytes",
	"container_spec_memory_swap_limit_bytes", "container_start_time_seconds", "container_threads", "container_threads_max",
	"container_ulimits_soft",
}

func TestPodSandboxMetrics(t *testing.T) {
	started := time.Unix(1700000000, 0)
	pod := runtime.PodMetrics{
		Pod:        runtime.SandboxView{ID: "pod1", Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default"}}},
		At:         started.Add(time.Minute),
		Interfaces: []runtime.InterfaceCounters{{Name: "eth0", RxBytes: 100, RxPackets: 2, TxBytes: 50, TxPackets: 1, RxDropped: 3}},
		Containers: []runtime.ContainerMetrics{{
			Container: runtime.ContainerView{ID: "c1", ImageName: "busybox", Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}},
				State: runtime.ContainerState{StartedAt: started}},
			Stats: &runtimeapi.ContainerStats{
				Cpu: &runtimeapi.CpuUsage{UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 3_800_000_000},
					Psi: &runtimeapi.PsiStats{Some: &runtimeapi.PsiData{Total: 7_000_000_000}, Full: &runtimeapi.PsiData{Total: 2_000_000_000}}},
				Io:            &runtimeapi.IoUsage{Psi: &runtimeapi.PsiStats{Some: &runtimeapi.PsiData{Total: 5_000_000_000}, Full: &runtimeapi.PsiData{}}},
				Memory:        &runtimeapi.MemoryUsage{UsageBytes: &runtimeapi.UInt64Value{Value: 1 << 20}, WorkingSetBytes: &runtimeapi.UInt64Value{}, RssBytes: &runtimeapi.UInt64Value{}},
				WritableLayer: &runtimeapi.FilesystemUsage{UsedBytes: &runtimeapi.UInt64Value{Value: 4096}},
			},
			Cgroup: runtime.CgroupDetail{CPUUserNanos: 2_500_000_000, CPUQuota: 20000, CPUPeriod: 100000, PageFaults: 10, HierarchyMajorPageFaults: 2,
				Blkio: []runtime.BlkioDevice{{Major: 8, Name: "/dev/sda", ReadBytes: 4096, WriteBytes: 8192}}},
			Tasks:      runtime.TaskCounts{Processes: 1, Threads: 2, FileDescriptors: 5, Sockets: 1, MaxOpenFiles: 1024},
			Filesystem: runtime.FilesystemCapacity{Device: "/dev/vda1", Bytes: 1 << 30, Inodes: 1000, InodesFree: 900},
		}},
	}
	pm := podSandboxMetrics(&pod)

	descs := map[string]*runtimeapi.MetricDescriptor{}
	for _, d := range metricDescriptors() {
		if d.Help == "" {
			t.Errorf("%s has no help", d.Name)
		}
		descs[d.Name] = d
	}
	got := map[string][]*runtimeapi.Metric{}
	for _, m := range pm.Metrics {
		got[m.Name] = append(got[m.Name], m)
	}
	for _, m := range pm.ContainerMetrics[0].Metrics {
		got[m.Name] = append(got[m.Name], m)
	}
	for _, name := range cadvisorNames {
		d, ok := descs[name]
		if !ok {
			t.Errorf("%s: not described", name)
			continue
		}
		if len(got[name]) == 0 {
			t.Errorf("%s: no value", name)
		}
		for _, m := range got[name] {
			if len(m.LabelValues) != len(d.LabelKeys) {
				t.Errorf("%s: label values %q for keys %q", name, m.LabelValues, d.LabelKeys)
			}
		}
	}
	value := func(name string, labels ...string) uint64 {
		for _, m := range got[name] {
			if len(labels) == 0 || equalTail(m.LabelValues, labels) {
				return m.Value.GetValue()
			}
		}
		t.Errorf("%s %q: none", name, labels)
		return 0
	}
	for _, check := range []struct {
		name   string
		labels []string
		want   uint64
	}{
		{"container_cpu_usage_seconds_total", nil, 3},
		{"container_cpu_user_seconds_total", nil, 2},
		{"container_spec_cpu_quota", nil, 20000},
		{"container_memory_failures_total", []string{"pgfault", "container"}, 10},
		{"container_memory_failures_total", []string{"pgmajfault", "hierarchy"}, 2},
		{"container_fs_writes_bytes_total", []string{"/dev/sda"}, 8192},
		{"container_blkio_device_usage_total", []string{"/dev/sda", "8", "0", "Read"}, 4096},
		{"container_fs_usage_bytes", []string{"/dev/vda1"}, 4096},
		{"container_fs_inodes_free", []string{"/dev/vda1"}, 900},
		{"container_ulimits_soft", []string{"max_open_files"}, 1024},
		{"container_start_time_seconds", nil, 1700000000},
		{"container_last_seen", nil, 1700000060},
		{"container_network_receive_packets_dropped_total", []string{"eth0"}, 3},
		{"container_pressure_cpu_waiting_seconds_total", nil, 7},
		{"container_pressure_cpu_stalled_seconds_total", nil, 2},
		{"container_pressure_io_waiting_seconds_total", nil, 5},
		{"container_pressure_io_stalled_seconds_total", nil, 0},
	} {
		if v := value(check.name, check.labels...); v != check.want {
			t.Errorf("%s %q = %d, want %d", check.name, check.labels, v, check.want)
		}
	}
	// No memory pressure was read (a v1 node has none at all): no value rather than a zero.
	if len(got["container_pressure_memory_waiting_seconds_total"]) != 0 {
		t.Errorf("memory pressure reported without a reading: %v", got["container_pressure_memory_waiting_seconds_total"])
	}
	if l := got["container_network_receive_bytes_total"][0].LabelValues; l[0] != "POD" || l[1] != "pod1" || l[5] != "web" {
		t.Errorf("network labels %q: want the pod's sandbox (POD)", l)
	}
	if l := got["container_processes"][0].LabelValues; l[0] != "app" || l[1] != "c1" || l[2] != "busybox" || l[4] != "default" {
		t.Errorf("container labels %q", l)
	}
}

func equalTail(values, tail []string) bool {
	if len(values) < len(tail) {
		return false
	}
	for i, v := range tail {
		if values[len(values)-len(tail)+i] != v {
			return false
		}
	}
	return true
}
