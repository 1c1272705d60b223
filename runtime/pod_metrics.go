package runtime

import (
	"context"
	"path/filepath"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/spec"
)

// PodMetrics are what a ready pod's cAdvisor-style metrics (ListPodSandboxMetrics, which the
// kubelet serves on /metrics/cadvisor with PodAndContainerStatsFromCRI) are made of: its network
// interfaces' counters and its running containers' readings.
type PodMetrics struct {
	Pod        SandboxView
	At         time.Time
	Interfaces []InterfaceCounters
	Containers []ContainerMetrics
}

// ContainerMetrics are a running container's readings.
type ContainerMetrics struct {
	Container ContainerView
	// Stats are its CPU and memory usage and its writable layer, as ContainerStats reports them.
	Stats  *runtimeapi.ContainerStats
	Cgroup CgroupDetail
	Tasks  TaskCounts
	// Filesystem is the file system its writable layer is on.
	Filesystem FilesystemCapacity
}

// FilesystemCapacity is a file system's device and size.
type FilesystemCapacity struct {
	Device                    string
	Bytes, Inodes, InodesFree uint64
}

// ListPodSandboxMetrics reads the metrics of every ready pod.
func (r *Runtime) ListPodSandboxMetrics(ctx context.Context) ([]PodMetrics, error) {
	views, err := r.PodSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	fs := r.filesystemCapacity(ctx)
	var out []PodMetrics
	for _, v := range views {
		if v.State != SandboxReady {
			continue
		}
		pm := PodMetrics{Pod: v, At: time.Now()}
		var pids []uint32
		if v.InfraPid != 0 {
			pids = append(pids, v.InfraPid)
		}
		for _, c := range r.containers.list(v.ID) {
			cv := c.view()
			if cv.State.State != ContainerRunning {
				continue
			}
			pids = append(pids, cv.State.Pid)
			path := r.cgroupDir(spec.CgroupsPath(v.Config.GetLinux().GetCgroupParent(), cv.ID, r.settings.CgroupDriver))
			pm.Containers = append(pm.Containers, ContainerMetrics{
				Container:  cv,
				Stats:      r.containerStats(ctx, cv),
				Cgroup:     readCgroupDetail(path, r.settings.CgroupV2),
				Tasks:      readTaskCounts(r.cgroupProcsFile(path), cv.State.Pid),
				Filesystem: fs,
			})
		}
		if v.NetNS != "" {
			if ifaces, err := podNetworkCounters(v.NetNS, pids); err == nil {
				pm.Interfaces = ifaces
			} else {
				r.log.Debug("no network metrics for a pod", "sandbox", v.ID, "error", err)
			}
		}
		out = append(out, pm)
	}
	return out, nil
}

// cgroupProcsFile is the cgroup.procs file of the cgroup at path (Runtime.cgroupDir).
func (r *Runtime) cgroupProcsFile(path string) string {
	if r.settings.CgroupV2 {
		return filepath.Join("/sys/fs/cgroup", path, "cgroup.procs")
	}
	roots := v1Roots()
	root, ok := roots["pids"]
	if !ok {
		root = roots["cpuacct"]
	}
	return filepath.Join(root, path, "cgroup.procs")
}

// filesystemCapacity is the device and size of the file system containers' writable layers
// are on (the snapshotter's).
func (r *Runtime) filesystemCapacity(ctx context.Context) FilesystemCapacity {
	info, err := r.images.FsInfo(ctx)
	if err != nil {
		return FilesystemCapacity{}
	}
	var fs FilesystemCapacity
	var st unix.Statfs_t
	if unix.Statfs(info.Mountpoint, &st) == nil {
		fs.Bytes, fs.Inodes, fs.InodesFree = st.Blocks*uint64(st.Bsize), st.Files, st.Ffree
	}
	// The mount the directory is on is the deepest of those containing it.
	if mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(info.Mountpoint)); err == nil {
		deepest := ""
		for _, m := range mounts {
			if len(m.Mountpoint) >= len(deepest) {
				deepest, fs.Device = m.Mountpoint, m.Source
			}
		}
	}
	return fs
}
