package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The cAdvisor-compatible metrics the kubelet serves on /metrics/cadvisor when it reads stats
// from the runtime (PodAndContainerStatsFromCRI). Container metrics carry cAdvisor's container
// labels; network metrics are the pod's (its network namespace), with the interface too.
var (
	containerLabels = []string{"container", "id", "image", "name", "namespace", "pod"}
	networkLabels   = append(append([]string{}, containerLabels...), "interface")

	containerMetrics = []struct {
		desc  *runtimeapi.MetricDescriptor
		typ   runtimeapi.MetricType
		value func(*runtimeapi.ContainerStats) (uint64, bool)
	}{
		{descriptor("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", containerLabels), runtimeapi.MetricType_COUNTER,
			func(s *runtimeapi.ContainerStats) (uint64, bool) {
				return s.GetCpu().GetUsageCoreNanoSeconds().GetValue() / 1e9, s.GetCpu() != nil
			}},
		{descriptor("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", containerLabels), runtimeapi.MetricType_GAUGE,
			func(s *runtimeapi.ContainerStats) (uint64, bool) {
				return s.GetMemory().GetUsageBytes().GetValue(), s.GetMemory() != nil
			}},
		{descriptor("container_memory_working_set_bytes", "Current working set in bytes.", containerLabels), runtimeapi.MetricType_GAUGE,
			func(s *runtimeapi.ContainerStats) (uint64, bool) {
				return s.GetMemory().GetWorkingSetBytes().GetValue(), s.GetMemory() != nil
			}},
		{descriptor("container_memory_rss", "Size of RSS in bytes.", containerLabels), runtimeapi.MetricType_GAUGE,
			func(s *runtimeapi.ContainerStats) (uint64, bool) {
				return s.GetMemory().GetRssBytes().GetValue(), s.GetMemory() != nil
			}},
		{descriptor("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", containerLabels), runtimeapi.MetricType_GAUGE,
			func(s *runtimeapi.ContainerStats) (uint64, bool) {
				return s.GetWritableLayer().GetUsedBytes().GetValue(), s.GetWritableLayer() != nil
			}},
	}

	networkMetrics = []struct {
		desc  *runtimeapi.MetricDescriptor
		value func(*runtimeapi.NetworkInterfaceUsage) uint64
	}{
		{descriptor("container_network_receive_bytes_total", "Cumulative count of bytes received.", networkLabels),
			func(n *runtimeapi.NetworkInterfaceUsage) uint64 { return n.GetRxBytes().GetValue() }},
		{descriptor("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", networkLabels),
			func(n *runtimeapi.NetworkInterfaceUsage) uint64 { return n.GetRxErrors().GetValue() }},
		{descriptor("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", networkLabels),
			func(n *runtimeapi.NetworkInterfaceUsage) uint64 { return n.GetTxBytes().GetValue() }},
		{descriptor("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", networkLabels),
			func(n *runtimeapi.NetworkInterfaceUsage) uint64 { return n.GetTxErrors().GetValue() }},
	}
)

func descriptor(name, help string, labels []string) *runtimeapi.MetricDescriptor {
	return &runtimeapi.MetricDescriptor{Name: name, Help: help, LabelKeys: labels}
}

// ListMetricDescriptors lists the metrics ListPodSandboxMetrics returns.
func (s *RuntimeService) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	resp := &runtimeapi.ListMetricDescriptorsResponse{}
	for _, m := range containerMetrics {
		resp.Descriptors = append(resp.Descriptors, m.desc)
	}
	for _, m := range networkMetrics {
		resp.Descriptors = append(resp.Descriptors, m.desc)
	}
	return resp, nil
}

// ListPodSandboxMetrics returns every pod's metrics: its containers' and its network's.
func (s *RuntimeService) ListPodSandboxMetrics(ctx context.Context, _ *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	pods, err := s.stats.ListPodSandboxStats(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	views, err := s.containers.Containers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	images := map[string]string{}
	for _, v := range views {
		images[v.ID] = v.ImageName
	}
	resp := &runtimeapi.ListPodSandboxMetricsResponse{}
	for _, pod := range pods {
		md := pod.GetAttributes().GetMetadata()
		pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: pod.GetAttributes().GetId()}
		for _, c := range pod.GetLinux().GetContainers() {
			id := c.GetAttributes().GetId()
			labels := []string{c.GetAttributes().GetMetadata().GetName(), id, images[id], id, md.GetNamespace(), md.GetName()}
			cm := &runtimeapi.ContainerMetrics{ContainerId: id}
			for _, m := range containerMetrics {
				if v, ok := m.value(c); ok {
					cm.Metrics = append(cm.Metrics, &runtimeapi.Metric{
						Name: m.desc.Name, Timestamp: c.GetCpu().GetTimestamp(), MetricType: m.typ,
						LabelValues: labels, Value: &runtimeapi.UInt64Value{Value: v},
					})
				}
			}
			pm.ContainerMetrics = append(pm.ContainerMetrics, cm)
		}
		if n := pod.GetLinux().GetNetwork(); n != nil {
			// cAdvisor reports a pod's network on its sandbox container, named "POD".
			for _, iface := range append([]*runtimeapi.NetworkInterfaceUsage{n.GetDefaultInterface()}, n.GetInterfaces()...) {
				if iface == nil {
					continue
				}
				labels := []string{"POD", pm.PodSandboxId, "", pm.PodSandboxId, md.GetNamespace(), md.GetName(), iface.GetName()}
				for _, m := range networkMetrics {
					pm.Metrics = append(pm.Metrics, &runtimeapi.Metric{
						Name: m.desc.Name, Timestamp: n.GetTimestamp(), MetricType: runtimeapi.MetricType_COUNTER,
						LabelValues: labels, Value: &runtimeapi.UInt64Value{Value: m.value(iface)},
					})
				}
			}
		}
		resp.PodMetrics = append(resp.PodMetrics, pm)
	}
	return resp, nil
}
