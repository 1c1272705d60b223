package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// nodeHugepageLimits is what the kubelet sends for a container that asks for no hugepages: a 0
// limit for every page size the node has, whether or not a hugetlb cgroup controller is there.
func nodeHugepageLimits(t *testing.T) []*runtimeapi.HugepageLimit {
	t.Helper()
	dirs, _ := filepath.Glob("/sys/kernel/mm/hugepages/hugepages-*kB")
	var limits []*runtimeapi.HugepageLimit
	for _, d := range dirs {
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(d), "hugepages-"), "kB"))
		if err != nil {
			t.Fatal(err)
		}
		size := strconv.Itoa(kb/1024) + "MB"
		if kb >= 1<<20 {
			size = strconv.Itoa(kb/(1<<20)) + "GB"
		}
		limits = append(limits, &runtimeapi.HugepageLimit{PageSize: size, Limit: 0})
	}
	if len(limits) == 0 {
		limits = []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}}
	}
	return limits
}

// hugetlbMounted says whether this node has a cgroup v1 hugetlb hierarchy.
func hugetlbMounted() bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if _, post, ok := strings.Cut(l, " - "); ok && strings.HasPrefix(post, "cgroup ") && strings.Contains(post, "hugetlb") {
			return true
		}
	}
	return false
}

// kubeletResources are a burstable container's resources as the kubelet sends them.
func kubeletResources(t *testing.T) *runtimeapi.LinuxContainerResources {
	return &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 102, MemoryLimitInBytes: 128 << 20,
		OomScoreAdj: 968, HugepageLimits: nodeHugepageLimits(t),
	}
}

// TestKubeletShapedResources starts a container with the resources the kubelet sends (CPU quota,
// period and shares, a memory limit, oom_score_adj, and a hugepage limit for every page size of
// the node) and updates them: on a node without a hugetlb controller, as this one, the hugepage
// limits are left out rather than failing the container in runc (issue 16: the kubelet could
// not start a single container here).
func TestKubeletShapedResources(t *testing.T) {
	if hugetlbMounted() {
		t.Log("this node has a hugetlb controller: the limits are applied, not left out")
	}
	e := newContainerEnv(t, "kubelet-resources")
	id := e.run(t, "app", func(c *runtimeapi.ContainerConfig) { c.Linux.Resources = kubeletResources(t) })
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container state = %v, want RUNNING", st.State)
	}
	if got := strings.TrimSpace(e.exec(t, id, "cat", "/proc/self/oom_score_adj")); got != "968" {
		t.Errorf("oom_score_adj inside = %s, want 968", got)
	}
	cg := "/sys/fs/cgroup/cpu/berth-e2e/kubelet-resources/" + id
	if b, err := os.ReadFile(cg + "/cpu.cfs_quota_us"); err == nil && strings.TrimSpace(string(b)) != "50000" {
		t.Errorf("cpu.cfs_quota_us = %s, want 50000", b)
	}
	update := kubeletResources(t)
	update.MemoryLimitInBytes = 256 << 20
	if _, err := e.d.Runtime.UpdateContainerResources(ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: update}); err != nil {
		t.Fatalf("UpdateContainerResources with the kubelet's hugepage limits: %v", err)
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory/berth-e2e/kubelet-resources/" + id + "/memory.limit_in_bytes"); err == nil &&
		strings.TrimSpace(string(b)) != strconv.Itoa(256<<20) {
		t.Errorf("memory.limit_in_bytes after the update = %s", b)
	}
}

// TestMissingHugetlbIsAnErrorWhenNotTolerated: with tolerate-missing-hugetlb-controller=false a
// container that asks for hugepage limits on a node without the controller is refused at
// CreateContainer, naming why.
func TestMissingHugetlbIsAnErrorWhenNotTolerated(t *testing.T) {
	if hugetlbMounted() {
		t.Skip("this node has a hugetlb controller")
	}
	e := newContainerEnv(t, "hugetlb-strict", "--tolerate-missing-hugetlb-controller=false")
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: busyboxRef},
		Command:  []string{"sleep", "3600"},
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: kubeletResources(t)},
	}
	_, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "hugetlb") {
		t.Fatalf("CreateContainer = %v, want FailedPrecondition naming hugetlb", err)
	}
}

// A container the kernel kills for memory exits OOMKilled, 137, and the shim's OOM event (the
// path that works under either cgroup driver, v1 or v2) is what said so.
func TestOOMKilledIsReported(t *testing.T) {
	e := newContainerEnv(t, "oom")
	id := e.run(t, "hog", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "a=x; while true; do a=$a$a; done"}
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
	})
	st := e.waitExit(t, id)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Fatalf("a container over its memory limit exited %d, %q; want 137, OOMKilled", st.ExitCode, st.Reason)
	}
	waitFor(t, "berthd to log the shim's OOM event", func() bool {
		return strings.Contains(e.d.Logs(), `msg="container OOM-killed" component=runtime container=`+id)
	})
}
