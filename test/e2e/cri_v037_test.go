package e2e

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podCIDRTemplate is a CNI config template as an operator would write one for
// cni-conf-template: the pod CIDR the kubelet sends becomes the bridge's range.
const podCIDRTemplate = `{
  "cniVersion": "1.0.0", "name": "berth-e2e-cidr",
  "plugins": [
    {"type": "bridge", "bridge": "berthcidr0", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
              "routes": [{{range $i, $r := .Routes}}{{if $i}}, {{end}}{"dst": "{{$r}}"}{{end}}]}},
    {"type": "loopback"}
  ]
}`

// TestUpdateRuntimeConfig: the kubelet's pod CIDR renders the CNI config template; pods created
// from then on get addresses from it, and a restarted berthd still knows the CIDR.
func TestUpdateRuntimeConfig(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template.json")
	if err := os.WriteFile(tmpl, []byte(podCIDRTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	confDir := filepath.Join(dir, "net.d")
	t.Cleanup(func() {
		exec.Command("ip", "link", "delete", "berthcidr0").Run()
		os.RemoveAll("/var/lib/cni/networks/berth-e2e-cidr")
	})
	d := startDaemon(t, "--cni-conf-dir", confDir, "--cni-conf-template", tmpl)
	if _, err := d.Runtime.UpdateRuntimeConfig(ctx(t), &runtimeapi.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.231.7.0/24"}}}); err != nil {
		t.Fatalf("UpdateRuntimeConfig: %v", err)
	}
	waitCondition(t, d.Runtime, runtimeapi.NetworkReady, true, 10*time.Second)
	id := runPod(t, d, podConfig("cidr"))
	if ip := podStatus(t, d, id).GetNetwork().GetIp(); !strings.HasPrefix(ip, "10.231.7.") {
		t.Errorf("pod IP %s is not from the pod CIDR 10.231.7.0/24", ip)
	}
	if _, err := d.Runtime.UpdateRuntimeConfig(ctx(t), &runtimeapi.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.231.7.0/33"}}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pod_cidr") {
		t.Errorf("a malformed pod CIDR: %v, want InvalidArgument naming pod_cidr", err)
	}
	d.Stop(syscall.SIGTERM)
	os.Remove(filepath.Join(confDir, "10-berth-net.conflist"))
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	resp, err := d.Runtime.Status(ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var cidrs []string
	if err := json.Unmarshal([]byte(resp.Info["podCIDRs"]), &cidrs); err != nil || len(cidrs) != 1 || cidrs[0] != "10.231.7.0/24" {
		t.Errorf("after a restart, podCIDRs = %q (%v)", resp.Info["podCIDRs"], err)
	}
	if _, err := os.Stat(filepath.Join(confDir, "10-berth-net.conflist")); err != nil {
		t.Errorf("the template was not rendered again after a restart: %v", err)
	}
}

// TestUpdatePodSandboxResources resizes a pod in place as the kubelet does (its cgroup first, then
// this call): the pod's status shows the new pod-level resources, also after a restart, and the
// pod's infra process gets them; an unknown pod is NotFound.
func TestUpdatePodSandboxResources(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	cfg := podConfig("resize")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	cfg.Linux.CgroupParent = "/berth-e2e/resize"
	t.Cleanup(func() { os.Remove("/sys/fs/cgroup/memory/berth-e2e"); os.Remove("/sys/fs/cgroup/cpu/berth-e2e") })
	id := runPod(t, d, cfg)
	res := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 150000, CpuShares: 1536, MemoryLimitInBytes: 256 << 20}
	overhead := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 10000, CpuShares: 102, MemoryLimitInBytes: 32 << 20}
	if _, err := d.Runtime.UpdatePodSandboxResources(ctx(t), &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: id, Resources: res, Overhead: overhead}); err != nil {
		t.Fatalf("UpdatePodSandboxResources: %v", err)
	}
	check := func(when string) {
		resp, err := d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Config struct {
				Linux struct {
					Resources struct {
						MemoryLimitInBytes int64 `json:"memory_limit_in_bytes"`
					} `json:"resources"`
				} `json:"linux"`
			} `json:"config"`
		}
		if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Config.Linux.Resources.MemoryLimitInBytes != 256<<20 {
			t.Errorf("%s: pod status config resources = %+v (%v)", when, info.Config.Linux.Resources, err)
		}
	}
	check("after the update")
	infra := filepath.Join("/sys/fs/cgroup/memory/berth-e2e/resize", id, "memory.limit_in_bytes")
	if b, err := os.ReadFile(infra); err != nil || strings.TrimSpace(string(b)) != "301989888" {
		t.Errorf("infra process memory limit %s = %q (%v), want 288 MiB (resources + overhead)", infra, b, err)
	}
	d.Stop(syscall.SIGTERM)
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	check("after a restart")
	if _, err := d.Runtime.UpdatePodSandboxResources(ctx(t), &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: "nothere", Resources: res}); status.Code(err) != codes.NotFound {
		t.Errorf("an unknown pod: %v, want NotFound", err)
	}
}

// TestListStreams compares each list-streaming RPC with its List twin, with and without a
// filter, on a berthd whose messages are cut small enough that each stream needs several.
func TestListStreams(t *testing.T) {
	e := newContainerEnv(t, "streams", "--log-level", "info")
	e.d.Env = []string{"BERTH_TEST_LIST_CHUNK_BYTES=250"}
	e.d.Stop(syscall.SIGTERM)
	if err := e.d.Run(); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		e.run(t, "c"+string(rune('a'+i)), nil)
	}
	for i := range 3 {
		runPod(t, e.d, podConfig("more-"+string(rune('a'+i))))
	}
	rs, is := e.d.Runtime, e.d.Image
	ids := func(msgs []proto.Message, items func(proto.Message) []string) (all []string, n int) {
		for _, m := range msgs {
			got := items(m)
			if len(got) == 0 {
				t.Errorf("an empty message in the stream")
			}
			all = append(all, got...)
		}
		sort.Strings(all)
		return all, len(msgs)
	}
	recvAll := func(recv func() (proto.Message, error)) []proto.Message {
		var out []proto.Message
		for {
			m, err := recv()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			out = append(out, m)
		}
	}
	compare := func(name string, streamed []proto.Message, items func(proto.Message) []string, listed []string, wantSeveral bool) {
		got, n := ids(streamed, items)
		sort.Strings(listed)
		if strings.Join(got, ",") != strings.Join(listed, ",") {
			t.Errorf("%s streamed %v, listed %v", name, got, listed)
		}
		if wantSeveral && n < 2 {
			t.Errorf("%s: %d message(s) for %d items; want several with 250-byte messages", name, n, len(got))
		}
	}

	podFilter := &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "streams"}}
	for _, f := range []*runtimeapi.PodSandboxFilter{nil, podFilter} {
		list, err := rs.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, p := range list.Items {
			listed = append(listed, p.Id)
		}
		s, err := rs.StreamPodSandboxes(ctx(t), &runtimeapi.StreamPodSandboxesRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		compare("StreamPodSandboxes", recvAll(func() (proto.Message, error) { return s.Recv() }), func(m proto.Message) []string {
			var out []string
			for _, p := range m.(*runtimeapi.StreamPodSandboxesResponse).PodSandboxes {
				out = append(out, p.Id)
			}
			return out
		}, listed, f == nil)
	}

	ctrFilter := &runtimeapi.ContainerFilter{PodSandboxId: e.pod}
	for _, f := range []*runtimeapi.ContainerFilter{nil, ctrFilter} {
		list, err := rs.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, c := range list.Containers {
			listed = append(listed, c.Id)
		}
		s, err := rs.StreamContainers(ctx(t), &runtimeapi.StreamContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		compare("StreamContainers", recvAll(func() (proto.Message, error) { return s.Recv() }), func(m proto.Message) []string {
			var out []string
			for _, c := range m.(*runtimeapi.StreamContainersResponse).Containers {
				out = append(out, c.Id)
			}
			return out
		}, listed, true)
	}

	stats, err := rs.ListContainerStats(ctx(t), &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listedStats []string
	for _, s := range stats.Stats {
		listedStats = append(listedStats, s.Attributes.Id)
	}
	ss, err := rs.StreamContainerStats(ctx(t), &runtimeapi.StreamContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	compare("StreamContainerStats", recvAll(func() (proto.Message, error) { return ss.Recv() }), func(m proto.Message) []string {
		var out []string
		for _, s := range m.(*runtimeapi.StreamContainerStatsResponse).ContainerStats {
			out = append(out, s.Attributes.Id)
		}
		return out
	}, listedStats, true)

	podStats, err := rs.ListPodSandboxStats(ctx(t), &runtimeapi.ListPodSandboxStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listedPodStats []string
	for _, s := range podStats.Stats {
		listedPodStats = append(listedPodStats, s.Attributes.Id)
	}
	ps, err := rs.StreamPodSandboxStats(ctx(t), &runtimeapi.StreamPodSandboxStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	compare("StreamPodSandboxStats", recvAll(func() (proto.Message, error) { return ps.Recv() }), func(m proto.Message) []string {
		var out []string
		for _, s := range m.(*runtimeapi.StreamPodSandboxStatsResponse).PodSandboxStats {
			out = append(out, s.Attributes.Id)
		}
		return out
	}, listedPodStats, true)

	metrics, err := rs.ListPodSandboxMetrics(ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listedMetrics []string
	for _, m := range metrics.PodMetrics {
		listedMetrics = append(listedMetrics, m.PodSandboxId)
	}
	ms, err := rs.StreamPodSandboxMetrics(ctx(t), &runtimeapi.StreamPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	compare("StreamPodSandboxMetrics", recvAll(func() (proto.Message, error) { return ms.Recv() }), func(m proto.Message) []string {
		var out []string
		for _, p := range m.(*runtimeapi.StreamPodSandboxMetricsResponse).PodSandboxMetrics {
			out = append(out, p.PodSandboxId)
		}
		return out
	}, listedMetrics, false)

	imgs, err := is.ListImages(ctx(t), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listedImages []string
	for _, i := range imgs.Images {
		listedImages = append(listedImages, i.Id)
	}
	isr, err := is.StreamImages(ctx(t), &runtimeapi.StreamImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	compare("StreamImages", recvAll(func() (proto.Message, error) { return isr.Recv() }), func(m proto.Message) []string {
		var out []string
		for _, i := range m.(*runtimeapi.StreamImagesResponse).Images {
			out = append(out, i.Id)
		}
		return out
	}, listedImages, false)
}
