package runtime

import (
	"context"

	containerd "github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdatePodSandboxResources records a pod's new pod-level resources (its overhead and the sum of
// its containers' resources), which the kubelet sends after it resized the pod's cgroup in place
// (the pod's status and a restarted berthd show them), and applies them to what berth runs for
// the pod itself: the infra process of a pod that shares its PID namespace, in a cgroup of its
// own under the pod's. The pod's cgroup is the kubelet's, already resized. The RPC is best effort
// (api.proto): limits the infra process's cgroup cannot take are logged, not an error. An
// unknown pod is errdefs.ErrNotFound.
func (r *Runtime) UpdatePodSandboxResources(ctx context.Context, id string, overhead, resources *runtimeapi.LinuxContainerResources) error {
	sb, err := r.loadedSandbox(ctx, id)
	if err != nil {
		return err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	cfg := proto.Clone(sb.Config).(*runtimeapi.PodSandboxConfig)
	if cfg.Linux == nil {
		cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{}
	}
	if overhead != nil {
		cfg.Linux.Overhead = overhead
	}
	if resources != nil {
		cfg.Linux.Resources = resources
	}
	sb.Config = cfg
	if err := r.saveRecord(ctx, sb); err != nil {
		return err
	}
	sb.publish()
	if sb.InfraPid != 0 {
		if err := r.updateInfra(ctx, sb.ID, podLevelResources(cfg.Linux.GetOverhead(), cfg.Linux.GetResources())); err != nil {
			r.log.Info("pod-level resources recorded but not applied to the infra process", "pod", sb.ID, "error", err)
		}
	}
	return nil
}

// podLevelResources adds a pod's overhead to the sum of its containers' resources, as the kubelet
// sizes the pod's cgroup: CPU shares, quota (over the containers' period) and memory limit. A
// value left 0 (unlimited) stays unset.
func podLevelResources(overhead, res *runtimeapi.LinuxContainerResources) *specs.LinuxResources {
	out := &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{}}
	if v := res.GetCpuShares() + overhead.GetCpuShares(); v > 0 {
		shares := uint64(v)
		out.CPU.Shares = &shares
	}
	if res.GetCpuQuota() > 0 && res.GetCpuPeriod() > 0 {
		quota := res.GetCpuQuota()
		if overhead.GetCpuQuota() > 0 && overhead.GetCpuPeriod() > 0 {
			quota += overhead.GetCpuQuota() * res.GetCpuPeriod() / overhead.GetCpuPeriod()
		}
		period := uint64(res.GetCpuPeriod())
		out.CPU.Quota, out.CPU.Period = &quota, &period
	}
	if res.GetMemoryLimitInBytes() > 0 {
		limit := res.GetMemoryLimitInBytes() + overhead.GetMemoryLimitInBytes()
		out.Memory.Limit = &limit
	}
	return out
}

// updateInfra applies res to the pod's infra process.
func (r *Runtime) updateInfra(ctx context.Context, id string, res *specs.LinuxResources) error {
	container, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	task, err := container.Task(ctx, nil)
	if err != nil {
		return err
	}
	return task.Update(ctx, containerd.WithResources(res))
}
