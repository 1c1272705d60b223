package spec

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CgroupsPath is where a container's (or infra process's) cgroup goes under its pod's parent:
// "<parent>/<id>" with cgroupfs, "<slice>:berth:<id>" with systemd, where the slice is the last
// element of the parent: the kubelet sends its pod slice's full path
// ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice") and runc's
// systemd driver takes a slice name, whose place systemd derives from the name itself.
func CgroupsPath(parent, id, driver string) string {
	if driver == "systemd" {
		slice := filepath.Base(parent)
		if parent == "" || slice == "/" || slice == "." {
			slice = "system.slice"
		}
		return slice + ":berth:" + id
	}
	if parent == "" {
		parent = "/berth"
	}
	return filepath.Join(parent, id)
}

func withCgroupsPath(in Input) oci.SpecOpts {
	return oci.WithCgroup(CgroupsPath(in.Sandbox.Config.GetLinux().GetCgroupParent(), in.ID, in.Settings.CgroupDriver))
}

// withResources maps the CPU, memory, hugepage and OOM settings. An oom_score_adj below berthd's
// own is raised to it: lowering it needs CAP_SYS_RESOURCE. It needs the cgroups path set, to
// know whether hugepage limits can be enforced there; *droppedHugepages is set when they cannot.
func withResources(in Input, droppedHugepages *bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		r := in.Config.GetLinux().GetResources()
		s.Process.OOMScoreAdj = nil
		if r == nil {
			return nil // the process keeps the runtime's oom_score_adj
		}
		dropped, err := applyResources(in.Settings, s, r)
		*droppedHugepages = dropped
		return err
	}
}

// applyResources writes r into s; UpdateContainerResources uses it too. Hugepage limits are left
// out, and dropped reported true, when the node has no hugetlb controller for the container's
// cgroup and the settings tolerate that (the kubelet sends a limit, 0 when none is asked for,
// for every page size the node has, hugetlb controller or not); otherwise asking for them there
// is ErrFailedPrecondition.
func applyResources(set Settings, s *specs.Spec, r *runtimeapi.LinuxContainerResources) (dropped bool, err error) {
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	res := s.Linux.Resources
	if res.CPU == nil {
		res.CPU = &specs.LinuxCPU{}
	}
	if v := r.GetCpuShares(); v > 0 {
		shares := uint64(v)
		res.CPU.Shares = &shares
	}
	if v := r.GetCpuQuota(); v > 0 {
		res.CPU.Quota = &v
	}
	if v := r.GetCpuPeriod(); v > 0 {
		period := uint64(v)
		res.CPU.Period = &period
	}
	res.CPU.Cpus = r.GetCpusetCpus()
	res.CPU.Mems = r.GetCpusetMems()
	if res.Memory == nil {
		res.Memory = &specs.LinuxMemory{}
	}
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		res.Memory.Limit = &v
	}
	if v := r.GetMemorySwapLimitInBytes(); v > 0 {
		res.Memory.Swap = &v
	} else if v := r.GetMemoryLimitInBytes(); v > 0 && set.cgroups().Swap() {
		// No swap beyond the memory limit unless asked for (the kubelet asks on v2 only):
		// memory and memory+swap limits equal, as containerd sets them.
		res.Memory.Swap = &v
	}
	res.HugepageLimits = nil
	if limits := r.GetHugepageLimits(); len(limits) > 0 {
		if set.cgroups().Hugetlb(s.Linux.CgroupsPath) {
			for _, h := range limits {
				res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
			}
		} else if set.TolerateMissingHugetlb {
			dropped = true
		} else {
			return false, fmt.Errorf("resources.hugepage_limits: the node has no hugetlb cgroup controller for %q "+
				"(set tolerate-missing-hugetlb-controller to leave hugepage limits out): %w", s.Linux.CgroupsPath, errdefs.ErrFailedPrecondition)
		}
	}
	if len(r.GetUnified()) > 0 {
		if !set.CgroupV2 {
			return false, fmt.Errorf("resources.unified: needs cgroup v2, and this node runs cgroup v1: %w", errdefs.ErrInvalidArgument)
		}
		res.Unified = r.GetUnified()
	}
	adj := int(r.GetOomScoreAdj())
	if adj < set.MinOOMScoreAdj {
		adj = set.MinOOMScoreAdj
	}
	if s.Process != nil {
		s.Process.OOMScoreAdj = &adj
	}
	return dropped, nil
}

// ApplyResources writes r into s's resources, for a live update; see applyResources for
// dropped.
func ApplyResources(set Settings, s *specs.Spec, r *runtimeapi.LinuxContainerResources) (dropped bool, err error) {
	return applyResources(set, s, r)
}

// withDevices adds the config's devices (host device, container path, permissions).
func withDevices(in Input) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		for i, d := range in.Config.GetDevices() {
			perms := d.GetPermissions()
			if perms == "" {
				perms = "rwm"
			}
			if err := oci.WithDevices(d.GetHostPath(), d.GetContainerPath(), perms)(ctx, c, ctr, s); err != nil {
				return fmt.Errorf("devices[%d] %q: %v: %w", i, d.GetHostPath(), err, errdefs.ErrInvalidArgument)
			}
		}
		return nil
	}
}

// AppliedResources reads back the resources s applies, as ContainerStatus reports them: what
// the container runs with, which may be less than was asked (hugepage limits the node cannot
// enforce, an oom_score_adj raised to berthd's own).
func AppliedResources(s *specs.Spec) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	if s.Process != nil && s.Process.OOMScoreAdj != nil {
		out.OomScoreAdj = int64(*s.Process.OOMScoreAdj)
	}
	if s.Linux == nil || s.Linux.Resources == nil {
		return out
	}
	r := s.Linux.Resources
	if c := r.CPU; c != nil {
		if c.Period != nil {
			out.CpuPeriod = int64(*c.Period)
		}
		if c.Quota != nil {
			out.CpuQuota = *c.Quota
		}
		if c.Shares != nil {
			out.CpuShares = int64(*c.Shares)
		}
		out.CpusetCpus, out.CpusetMems = c.Cpus, c.Mems
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			out.MemoryLimitInBytes = *m.Limit
		}
		if m.Swap != nil {
			out.MemorySwapLimitInBytes = *m.Swap
		}
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.Pagesize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = maps.Clone(r.Unified)
	}
	return out
}
