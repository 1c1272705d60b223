package runtime

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
)

// cgroupUsage is what berth reads of a cgroup for stats, the same for cgroup v1 and v2.
type cgroupUsage struct {
	// CPUNanos is the CPU time used, cumulative.
	CPUNanos uint64
	// Memory: usage, working set (usage less inactive file pages, what the kubelet evicts on),
	// anonymous memory, page faults, and the limit (0: none).
	MemoryUsage, WorkingSet, RSS, PageFaults, MajorPageFaults, MemoryLimit uint64
	// SwapUsage is swap in use, when the kernel accounts it.
	SwapUsage uint64
	// Processes is the number of tasks in the cgroup.
	Processes uint64
}

// unlimited is the smallest value cgroup v1 reports for "no memory limit" (PAGE_COUNTER_MAX
// rounded to pages varies by architecture; anything this large is no limit).
const unlimited = 1 << 62

// v1Subsystems are the cgroup v1 controllers stats read, found once: loading a cgroup with the
// library's default hierarchy would parse the mount table and stat every controller each time.
var v1Subsystems = sync.OnceValues(func() ([]cgroup1.Subsystem, error) {
	all, err := cgroup1.Default()
	if err != nil {
		return nil, err
	}
	var keep []cgroup1.Subsystem
	for _, s := range all {
		switch s.Name() {
		case cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids:
			keep = append(keep, s)
		}
	}
	return keep, nil
})

// readCgroup reads the usage of the cgroup at path (a cgroupfs path, or slice:prefix:name for
// the systemd driver, as in the OCI spec).
func readCgroup(path string, v2 bool) (cgroupUsage, error) {
	path = cgroupfsPath(path)
	if v2 {
		return readCgroup2(path)
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path), cgroup1.WithHiearchy(v1Subsystems))
	if err != nil {
		return cgroupUsage{}, fmt.Errorf("cgroup %s: %w", path, err)
	}
	m, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return cgroupUsage{}, fmt.Errorf("cgroup %s: %w", path, err)
	}
	var u cgroupUsage
	if m.CPU != nil && m.CPU.Usage != nil {
		u.CPUNanos = m.CPU.Usage.Total
	}
	if mem := m.Memory; mem != nil {
		if mem.Usage != nil {
			u.MemoryUsage = mem.Usage.Usage
			if mem.Usage.Limit < unlimited {
				u.MemoryLimit = mem.Usage.Limit
			}
		}
		u.WorkingSet = workingSet(u.MemoryUsage, mem.TotalInactiveFile)
		u.RSS, u.PageFaults, u.MajorPageFaults = mem.TotalRSS, mem.TotalPgFault, mem.TotalPgMajFault
		if mem.Swap != nil && mem.Swap.Usage > u.MemoryUsage {
			u.SwapUsage = mem.Swap.Usage - u.MemoryUsage // memsw counts memory and swap together
		}
	}
	if m.Pids != nil {
		u.Processes = m.Pids.Current
	}
	return u, nil
}

func readCgroup2(path string) (cgroupUsage, error) {
	cg, err := cgroup2.Load(path)
	if err != nil {
		return cgroupUsage{}, fmt.Errorf("cgroup %s: %w", path, err)
	}
	m, err := cg.Stat()
	if err != nil {
		return cgroupUsage{}, fmt.Errorf("cgroup %s: %w", path, err)
	}
	var u cgroupUsage
	if m.CPU != nil {
		u.CPUNanos = m.CPU.UsageUsec * 1000
	}
	if mem := m.Memory; mem != nil {
		u.MemoryUsage, u.SwapUsage = mem.Usage, mem.SwapUsage
		if mem.UsageLimit < unlimited {
			u.MemoryLimit = mem.UsageLimit
		}
		u.WorkingSet = workingSet(mem.Usage, mem.InactiveFile)
		u.RSS, u.PageFaults, u.MajorPageFaults = mem.Anon, mem.Pgfault, mem.Pgmajfault
	}
	if m.Pids != nil {
		u.Processes = m.Pids.Current
	}
	return u, nil
}

func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}

// cgroupfsPath turns a systemd driver path (slice:prefix:name) into the cgroupfs path systemd
// gives it: the slice expanded into its parents, the unit prefix-name.scope below.
func cgroupfsPath(path string) string {
	parts := strings.Split(path, ":")
	if len(parts) != 3 {
		return path
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	return filepath.Join(expandSlice(slice), prefix+"-"+name+".scope")
}

// expandSlice expands a systemd slice name into its path: a-b-c.slice is
// /a.slice/a-b.slice/a-b-c.slice.
func expandSlice(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return "/"
	}
	path, prefix := "/", ""
	for _, part := range strings.Split(name, "-") {
		prefix += part
		path = filepath.Join(path, prefix+".slice")
		prefix += "-"
	}
	return path
}
