package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A container burning one CPU and holding 64 MiB shows that in its stats, and its pod's network
// counters grow with traffic.
func TestStatsFollowUsage(t *testing.T) {
	e := newContainerEnv(t, "stats")
	id := e.run(t, "burner", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "head -c 67108864 /dev/zero > /dev/shm/hold; while :; do :; done"}
		c.Labels = map[string]string{"role": "burner"}
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 256 << 20}
	})
	stats := func() *runtimeapi.ContainerStats {
		resp, err := e.d.Runtime.ContainerStats(ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStats: %v", err)
		}
		return resp.Stats
	}
	waitFor(t, "64 MiB in the container's working set", func() bool {
		return stats().GetMemory().GetWorkingSetBytes().GetValue() >= 64<<20
	})
	stats() // the first reading of an interval
	time.Sleep(time.Second)
	st := stats()
	cores := float64(st.GetCpu().GetUsageNanoCores().GetValue()) / 1e9
	if cores < 0.7 || cores > 1.3 {
		t.Errorf("a container burning one CPU uses %.2f cores", cores)
	}
	mem := st.GetMemory()
	if ws := mem.GetWorkingSetBytes().GetValue(); ws < 64<<20 || ws > 96<<20 {
		t.Errorf("working set %d MiB, want about 64", ws>>20)
	}
	if avail := mem.GetAvailableBytes().GetValue(); avail == 0 || avail > (256-64)<<20 {
		t.Errorf("available %d MiB under a 256 MiB limit with 64 used", avail>>20)
	}
	if st.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || mem.GetPageFaults().GetValue() == 0 || st.GetWritableLayer().GetFsId().GetMountpoint() == "" {
		t.Errorf("incomplete stats: %v", st)
	}
	if st.GetAttributes().GetMetadata().GetName() != "burner" || st.GetAttributes().GetLabels()["role"] != "burner" {
		t.Errorf("attributes %v", st.GetAttributes())
	}
	// The writable layer counts what the container wrote to its root. Its usage is measured
	// again 10 s after the last measurement, aside from the call that finds it older: a later
	// call has it.
	e.exec(t, id, "sh", "-c", "head -c 4194304 /dev/zero > /big")
	time.Sleep(10 * time.Second)
	waitFor(t, "the writable layer to count 4 MiB written to it", func() bool {
		return stats().GetWritableLayer().GetUsedBytes().GetValue() >= 4<<20
	})

	// Filters.
	list, err := e.d.Runtime.ListContainerStats(ctx(t), &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"role": "other"}}})
	if err != nil || len(list.Stats) != 0 {
		t.Errorf("ListContainerStats by another label: %v %v", list.GetStats(), err)
	}
	list, err = e.d.Runtime.ListContainerStats(ctx(t), &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: e.pod[:12]}})
	if err != nil || len(list.Stats) != 1 || list.Stats[0].Attributes.Id != id {
		t.Errorf("ListContainerStats by pod: %v %v", list.GetStats(), err)
	}

	// Pod stats: its cgroup holds the container, its network counters grow with traffic.
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, strings.Repeat("x", 1<<20)) }))
	podStats := func() *runtimeapi.PodSandboxStats {
		resp, err := e.d.Runtime.PodSandboxStats(ctx(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: e.pod})
		if err != nil {
			t.Fatalf("PodSandboxStats: %v", err)
		}
		return resp.Stats
	}
	before := podStats()
	gateway := strings.TrimSuffix(e2eSubnet, "0.0/16") + "0.1"
	e.exec(t, id, "wget", "-q", "-O", "/dev/null", fmt.Sprintf("http://%s:%d/", gateway, l.Addr().(*net.TCPAddr).Port))
	after := podStats()
	rx0, rx1 := before.GetLinux().GetNetwork().GetDefaultInterface().GetRxBytes().GetValue(), after.GetLinux().GetNetwork().GetDefaultInterface().GetRxBytes().GetValue()
	if name := after.GetLinux().GetNetwork().GetDefaultInterface().GetName(); name != "eth0" || rx1-rx0 < 1<<20 {
		t.Errorf("pod network %s: rx %d -> %d after a 1 MiB download", name, rx0, rx1)
	}
	if ws := after.GetLinux().GetMemory().GetWorkingSetBytes().GetValue(); ws < 64<<20 {
		t.Errorf("pod working set %d MiB, want at least its container's 64", ws>>20)
	}
	if n := after.GetLinux().GetProcess().GetProcessCount().GetValue(); n < 1 {
		t.Errorf("pod process count %d", n)
	}
	if len(after.GetLinux().GetContainers()) != 1 {
		t.Errorf("pod stats list %d containers", len(after.GetLinux().GetContainers()))
	}

	// The cAdvisor-style metrics the kubelet serves from the runtime.
	descs, err := e.d.Runtime.ListMetricDescriptors(ctx(t), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil || len(descs.Descriptors) == 0 {
		t.Fatalf("ListMetricDescriptors: %v %v", descs, err)
	}
	metrics, err := e.d.Runtime.ListPodSandboxMetrics(ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil || len(metrics.PodMetrics) != 1 {
		t.Fatalf("ListPodSandboxMetrics: %v %v", metrics, err)
	}
	values := map[string]uint64{}
	for _, m := range metrics.PodMetrics[0].Metrics {
		values[m.Name] += m.Value.GetValue()
	}
	for _, c := range metrics.PodMetrics[0].ContainerMetrics {
		for _, m := range c.Metrics {
			values[m.Name] += m.Value.GetValue()
			// cAdvisor's container labels first; some metrics have more (device, failure_type...).
			if len(m.LabelValues) < 6 || m.LabelValues[0] != "burner" || m.LabelValues[5] != "stats" {
				t.Errorf("labels of %s: %v", m.Name, m.LabelValues)
			}
		}
	}
	if values["container_memory_working_set_bytes"] < 64<<20 || values["container_network_receive_bytes_total"] < 1<<20 || values["container_cpu_usage_seconds_total"] == 0 {
		t.Errorf("pod metrics: %v", values)
	}
	// The rest of cAdvisor's set, read from the container's cgroup, its processes and the file
	// system its writable layer is on.
	for name, ok := range map[string]bool{
		"container_cpu_user_seconds_total":        values["container_cpu_user_seconds_total"] >= 1, // a CPU burnt for over 10 s
		"container_spec_memory_limit_bytes":       values["container_spec_memory_limit_bytes"] == 256<<20,
		"container_spec_cpu_shares":               values["container_spec_cpu_shares"] > 0,
		"container_processes":                     values["container_processes"] >= 1,
		"container_threads":                       values["container_threads"] >= 1,
		"container_file_descriptors":              values["container_file_descriptors"] >= 1,
		"container_fs_usage_bytes":                values["container_fs_usage_bytes"] >= 4<<20,
		"container_fs_inodes_total":               values["container_fs_inodes_total"] > values["container_fs_inodes_free"],
		"container_fs_limit_bytes":                values["container_fs_limit_bytes"] > 0,
		"container_start_time_seconds":            values["container_start_time_seconds"] > uint64(time.Now().Add(-time.Hour).Unix()),
		"container_network_receive_packets_total": values["container_network_receive_packets_total"] > 0,
		"container_memory_failures_total":         values["container_memory_failures_total"] > 0,
	} {
		if !ok {
			t.Errorf("pod metrics: %s = %d", name, values[name])
		}
	}

	// crictl shows them.
	crictl := tool(t, "crictl")
	out, err := exec.Command(crictl, "--runtime-endpoint", e.d.Endpoint(), "stats", "-o", "json").Output()
	if err != nil || !strings.Contains(string(out), id) || !strings.Contains(string(out), "workingSetBytes") {
		t.Errorf("crictl stats: %v\n%s", err, out)
	}
	out, err = exec.Command(crictl, "--runtime-endpoint", e.d.Endpoint(), "statsp", "-o", "json").Output()
	if err != nil || !strings.Contains(string(out), e.pod) || !strings.Contains(string(out), "rxBytes") {
		t.Errorf("crictl statsp: %v\n%s", err, out)
	}
}
