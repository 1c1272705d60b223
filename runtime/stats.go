package runtime

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/spec"
)

// layerUsageFor is how long a container's writable layer usage is reused: measuring it walks
// the layer, and the kubelet asks for stats every few seconds.
const layerUsageFor = 10 * time.Second

// statsCache keeps what stats computes from more than one reading: the last CPU reading per
// cgroup (for nano-cores) and recent writable layer usage per container.
type statsCache struct {
	mu     sync.Mutex
	cpu    map[string]cpuReading
	layers map[string]layerReading
	// refreshing are the layers being measured again, aside from any stats call.
	refreshing map[string]bool
}

type cpuReading struct {
	at    time.Time
	nanos uint64
}

type layerReading struct {
	at            time.Time
	bytes, inodes uint64
}

// nanoCores is the CPU used since the last reading of key, in billionths of a core; nil on the
// first reading.
func (s *statsCache) nanoCores(key string, at time.Time, nanos uint64) *runtimeapi.UInt64Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cpu == nil {
		s.cpu = map[string]cpuReading{}
	}
	prev, ok := s.cpu[key]
	s.cpu[key] = cpuReading{at, nanos}
	if !ok || !at.After(prev.at) || nanos < prev.nanos {
		return nil
	}
	return &runtimeapi.UInt64Value{Value: uint64(float64(nanos-prev.nanos) / float64(at.Sub(prev.at).Nanoseconds()) * 1e9)}
}

// forget drops what is kept of a removed container or pod.
func (s *statsCache) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cpu, key)
	delete(s.layers, key)
	delete(s.refreshing, key)
}

// layer returns the reading of a container's writable layer, if there is one. refresh says that
// it is older than layerUsageFor and that the caller is to measure it again (the one caller
// until that is done: the others get the reading there is).
func (s *statsCache) layer(id string, now time.Time) (reading layerReading, ok, refresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reading, ok = s.layers[id]
	if ok && now.Sub(reading.at) > layerUsageFor && !s.refreshing[id] {
		if s.refreshing == nil {
			s.refreshing = map[string]bool{}
		}
		s.refreshing[id] = true
		refresh = true
	}
	return reading, ok, refresh
}

// setLayer records a first reading.
func (s *statsCache) setLayer(id string, reading layerReading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.layers == nil {
		s.layers = map[string]layerReading{}
	}
	s.layers[id] = reading
}

// refreshed ends a refresh that layer asked for, with the new reading when measured is set. A
// container forgotten meanwhile (removed) gets no reading back.
func (s *statsCache) refreshed(id string, reading layerReading, measured bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.refreshing[id] {
		return
	}
	delete(s.refreshing, id)
	if measured {
		s.layers[id] = reading
	}
}

// ContainerStats returns the resource usage of a container.
func (r *Runtime) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.containerStats(ctx, c.view()), nil
}

// ListContainerStats returns the resource usage of every container.
func (r *Runtime) ListContainerStats(ctx context.Context) ([]*runtimeapi.ContainerStats, error) {
	views, err := r.Containers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.ContainerStats, 0, len(views))
	for _, v := range views {
		out = append(out, r.containerStats(ctx, v))
	}
	return out, nil
}

// containerStats reads a container's usage: CPU and memory from its cgroup while it runs, its
// writable layer always.
func (r *Runtime) containerStats(ctx context.Context, v ContainerView) *runtimeapi.ContainerStats {
	st := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: v.ID, Metadata: v.Config.GetMetadata(), Labels: v.Config.GetLabels(), Annotations: v.Config.GetAnnotations(),
		},
		WritableLayer: r.writableLayer(ctx, v.ID),
	}
	if v.State.State != ContainerRunning {
		return st
	}
	sb, err := r.sandboxes.get(v.SandboxID)
	if err != nil {
		return st
	}
	now := time.Now()
	u, err := readCgroup(r.cgroupDir(spec.CgroupsPath(sb.Config.GetLinux().GetCgroupParent(), v.ID, r.settings.CgroupDriver)), r.settings.CgroupV2)
	if err != nil {
		r.log.Debug("no cgroup stats for a running container", "container", v.ID, "error", err)
		return st
	}
	st.Cpu, st.Memory, st.Swap, st.Io = r.usage(v.ID, now, u)
	return st
}

// usage turns a cgroup reading into CRI CPU, memory, swap and I/O usage (I/O only where the
// kernel reports the cgroup's I/O pressure: cgroup v2).
func (r *Runtime) usage(key string, now time.Time, u cgroupUsage) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage, *runtimeapi.SwapUsage, *runtimeapi.IoUsage) {
	ts := now.UnixNano()
	cpu := &runtimeapi.CpuUsage{
		Timestamp:            ts,
		UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: u.CPUNanos},
		UsageNanoCores:       r.stats.nanoCores(key, now, u.CPUNanos),
		Psi:                  psiStats(u.CPUPressure),
	}
	mem := &runtimeapi.MemoryUsage{
		Timestamp:       ts,
		WorkingSetBytes: &runtimeapi.UInt64Value{Value: u.WorkingSet},
		UsageBytes:      &runtimeapi.UInt64Value{Value: u.MemoryUsage},
		RssBytes:        &runtimeapi.UInt64Value{Value: u.RSS},
		PageFaults:      &runtimeapi.UInt64Value{Value: u.PageFaults},
		MajorPageFaults: &runtimeapi.UInt64Value{Value: u.MajorPageFaults},
		Psi:             psiStats(u.MemoryPressure),
	}
	if u.MemoryLimit > 0 {
		avail := uint64(0)
		if u.MemoryLimit > u.WorkingSet {
			avail = u.MemoryLimit - u.WorkingSet
		}
		mem.AvailableBytes = &runtimeapi.UInt64Value{Value: avail}
	}
	swap := &runtimeapi.SwapUsage{Timestamp: ts, SwapUsageBytes: &runtimeapi.UInt64Value{Value: u.SwapUsage}}
	var io *runtimeapi.IoUsage
	if u.IOPressure != nil {
		io = &runtimeapi.IoUsage{Timestamp: ts, Psi: psiStats(u.IOPressure)}
	}
	return cpu, mem, swap, io
}

// psiStats is a pressure reading as the CRI reports it (totals in nanoseconds); nil for none.
func psiStats(p *pressure) *runtimeapi.PsiStats {
	if p == nil {
		return nil
	}
	data := func(l pressureLine) *runtimeapi.PsiData {
		return &runtimeapi.PsiData{Total: l.TotalMicros * 1000, Avg10: l.Avg10, Avg60: l.Avg60, Avg300: l.Avg300}
	}
	return &runtimeapi.PsiStats{Some: data(p.Some), Full: data(p.Full)}
}

// writableLayer reports the bytes and inodes of a container's own snapshot (its writes), on the
// file system the images live on.
func (r *Runtime) writableLayer(ctx context.Context, id string) *runtimeapi.FilesystemUsage {
	prev, ok, refresh := r.stats.layer(id, time.Now())
	switch {
	case !ok:
		reading, err := r.measureLayer(ctx, id)
		if err != nil {
			return nil
		}
		r.stats.setLayer(id, reading)
		prev = reading
	case refresh:
		// The caller gets the reading there is and the next one is measured aside: a stats call
		// never waits for every container's layer to be walked (on a full node that made every
		// tenth second's ListPodSandboxStats the slow one).
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			r.layerRefreshes <- struct{}{}
			reading, err := r.measureLayer(ctx, id)
			<-r.layerRefreshes
			r.stats.refreshed(id, reading, err == nil)
		}()
	}
	fs := &runtimeapi.FilesystemUsage{
		Timestamp:  prev.at.UnixNano(),
		UsedBytes:  &runtimeapi.UInt64Value{Value: prev.bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: prev.inodes},
	}
	if info, err := r.images.FsInfo(ctx); err == nil {
		fs.FsId = &runtimeapi.FilesystemIdentifier{Mountpoint: info.Mountpoint}
	}
	return fs
}

// measureLayer asks the snapshotter how much a container's writable layer holds (it walks it).
func (r *Runtime) measureLayer(ctx context.Context, id string) (layerReading, error) {
	usage, err := r.client.SnapshotService(snapshotter).Usage(ctx, id)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			r.log.Debug("no writable layer usage", "container", id, "error", err)
		}
		return layerReading{}, err
	}
	return layerReading{at: time.Now(), bytes: uint64(usage.Size), inodes: uint64(usage.Inodes)}, nil
}

// PodSandboxStats returns the resource usage of a pod: its cgroup's CPU, memory and processes,
// its network interfaces' counters, and its containers' stats.
func (r *Runtime) PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	sb, err := r.loadedSandbox(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.podStats(ctx, sb.view()), nil
}

// ListPodSandboxStats returns the resource usage of every pod.
func (r *Runtime) ListPodSandboxStats(ctx context.Context) ([]*runtimeapi.PodSandboxStats, error) {
	views, err := r.PodSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.PodSandboxStats, 0, len(views))
	for _, v := range views {
		out = append(out, r.podStats(ctx, v))
	}
	return out, nil
}

func (r *Runtime) podStats(ctx context.Context, v SandboxView) *runtimeapi.PodSandboxStats {
	linux := &runtimeapi.LinuxPodSandboxStats{}
	st := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: v.ID, Metadata: v.Config.GetMetadata(), Labels: v.Config.GetLabels(), Annotations: v.Config.GetAnnotations(),
		},
		Linux: linux,
	}
	var sum cgroupUsage
	var pids []uint32 // processes in the pod's namespaces
	if v.InfraPid != 0 {
		pids = append(pids, v.InfraPid)
	}
	for _, c := range r.containers.list(v.ID) {
		cv := c.view()
		if cv.State.State == ContainerRunning && cv.State.Pid != 0 {
			pids = append(pids, cv.State.Pid)
		}
		cs := r.containerStats(ctx, cv)
		linux.Containers = append(linux.Containers, cs)
		if cs.Cpu != nil {
			sum.CPUNanos += cs.Cpu.UsageCoreNanoSeconds.GetValue()
			sum.MemoryUsage += cs.Memory.UsageBytes.GetValue()
			sum.WorkingSet += cs.Memory.WorkingSetBytes.GetValue()
			sum.RSS += cs.Memory.RssBytes.GetValue()
			sum.PageFaults += cs.Memory.PageFaults.GetValue()
			sum.MajorPageFaults += cs.Memory.MajorPageFaults.GetValue()
		}
	}
	if v.State != SandboxReady {
		return st
	}
	now := time.Now()
	// The pod's cgroup holds all its processes (the infra process too); a pod without one of
	// its own is the sum of its containers.
	if parent := v.Config.GetLinux().GetCgroupParent(); parent != "" {
		if u, err := readCgroup(r.cgroupDir(parent), r.settings.CgroupV2); err == nil {
			sum = u
		}
	}
	linux.Cpu, linux.Memory, _, linux.Io = r.usage("pod:"+v.ID, now, sum)
	if sum.Processes == 0 {
		for _, c := range linux.Containers {
			if c.Cpu != nil {
				sum.Processes++ // at least the container's own process
			}
		}
	}
	linux.Process = &runtimeapi.ProcessUsage{Timestamp: now.UnixNano(), ProcessCount: &runtimeapi.UInt64Value{Value: sum.Processes}}
	if v.NetNS != "" {
		if ifaces, err := podNetworkCounters(v.NetNS, pids); err == nil {
			linux.Network = networkUsage(now, ifaces)
		} else {
			r.log.Debug("no network stats for a pod", "sandbox", v.ID, "error", err)
		}
	}
	return st
}

// networkUsage makes CRI network usage of interface counters: the default interface is eth0 (the
// one CNI adds), else the first; the others are listed apart from it.
func networkUsage(now time.Time, ifaces []InterfaceCounters) *runtimeapi.NetworkUsage {
	n := &runtimeapi.NetworkUsage{Timestamp: now.UnixNano()}
	def := 0
	for i, c := range ifaces {
		if c.Name == "eth0" {
			def = i
		}
	}
	for i, c := range ifaces {
		u := &runtimeapi.NetworkInterfaceUsage{
			Name:     c.Name,
			RxBytes:  &runtimeapi.UInt64Value{Value: c.RxBytes},
			RxErrors: &runtimeapi.UInt64Value{Value: c.RxErrors},
			TxBytes:  &runtimeapi.UInt64Value{Value: c.TxBytes},
			TxErrors: &runtimeapi.UInt64Value{Value: c.TxErrors},
		}
		if i == def {
			n.DefaultInterface = u
		} else {
			n.Interfaces = append(n.Interfaces, u)
		}
	}
	return n
}
