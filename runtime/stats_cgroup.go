package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-runtime/berth/cgroup"
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
	// CPUPressure, MemoryPressure and IOPressure are the cgroup's pressure stall information
	// (cgroup v2 with PSI on); nil where the kernel has none.
	CPUPressure, MemoryPressure, IOPressure *pressure
}

// pressure is a cgroup v2 pressure file (cpu.pressure, memory.pressure, io.pressure): how much
// of the time some, or all, of the cgroup's runnable tasks waited for the resource.
type pressure struct{ Some, Full pressureLine }

// pressureLine is one line of a pressure file: the share of time stalled (percent) over the
// last 10, 60 and 300 seconds, and the total time stalled.
type pressureLine struct {
	Avg10, Avg60, Avg300 float64
	TotalMicros          uint64
}

// readPressure reads a pressure file; nil when it is not there or not readable (PSI off).
func readPressure(path string) *pressure {
	b, err := readFile(path)
	if err != nil {
		return nil
	}
	return parsePressure(b)
}

// parsePressure parses "some avg10=0.12 avg60=0.05 avg300=0.01 total=12345" and its "full" line;
// nil when neither is there.
func parsePressure(b []byte) *pressure {
	var p pressure
	seen := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var l *pressureLine
		switch f[0] {
		case "some":
			l = &p.Some
		case "full":
			l = &p.Full
		default:
			continue
		}
		seen = true
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "avg10":
				l.Avg10, _ = strconv.ParseFloat(v, 64)
			case "avg60":
				l.Avg60, _ = strconv.ParseFloat(v, 64)
			case "avg300":
				l.Avg300, _ = strconv.ParseFloat(v, 64)
			case "total":
				l.TotalMicros, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	if !seen {
		return nil
	}
	return &p
}

// unlimited is the smallest value cgroup v1 reports for "no memory limit" (PAGE_COUNTER_MAX
// rounded to pages varies by architecture; anything this large is no limit).
const unlimited = 1 << 62

// The kubelet asks for every pod's and container's stats every few seconds: stats read the few
// files they report from, with plain open/read/close (no poller registration, which regular
// files refuse anyway), rather than a library's full Stat that reads every file of every
// controller (25 files for a v1 memory, cpuacct and pids reading; 70% of ListPodSandboxStats'
// CPU time on a node of 40 pods).

// v1Roots are where the cgroup v1 controllers stats read are mounted, found once.
var v1Roots = sync.OnceValue(func() map[string]string {
	roots := map[string]string{}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return roots
	}
	for _, line := range strings.Split(string(mi), "\n") {
		// ... mount-point options - fstype source super-options
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(g[2], ",") {
			switch opt {
			case "cpu", "cpuacct", "memory", "pids", "blkio":
				if _, seen := roots[opt]; !seen {
					roots[opt] = f[4]
				}
			}
		}
	}
	return roots
})

// readCgroup reads the usage of the cgroup at path (a cgroupfs path, or slice:prefix:name for
// the systemd driver, as in the OCI spec).
func readCgroup(path string, v2 bool) (cgroupUsage, error) {
	if v2 {
		return readCgroup2(filepath.Join("/sys/fs/cgroup", path))
	}
	return readCgroup1(v1Roots(), path)
}

// cgroupDir is where the cgroup of an OCI cgroups path (or a pod's cgroup parent) of the node's
// driver is below each hierarchy's root: a systemd slice or scope is expanded into its
// directories, as systemd makes them.
func (r *Runtime) cgroupDir(path string) string {
	return cgroup.HostPath(r.settings.CgroupDriver, path)
}

// readCgroup1 reads a cgroup v1 cgroup at path in the hierarchies of roots (controller: mount
// point). The CPU reading is required; memory and pids are read when their controllers are there.
func readCgroup1(roots map[string]string, path string) (cgroupUsage, error) {
	var u cgroupUsage
	var err error
	if u.CPUNanos, err = readUint(filepath.Join(roots["cpuacct"], path, "cpuacct.usage")); err != nil {
		return u, fmt.Errorf("cgroup %s: %w", path, err)
	}
	if root, ok := roots["memory"]; ok {
		dir := filepath.Join(root, path)
		u.MemoryUsage, _ = readUint(filepath.Join(dir, "memory.usage_in_bytes"))
		if limit, err := readUint(filepath.Join(dir, "memory.limit_in_bytes")); err == nil && limit < unlimited {
			u.MemoryLimit = limit
		}
		stat := readKeyed(filepath.Join(dir, "memory.stat"))
		u.WorkingSet = workingSet(u.MemoryUsage, stat["total_inactive_file"])
		u.RSS, u.PageFaults, u.MajorPageFaults = stat["total_rss"], stat["total_pgfault"], stat["total_pgmajfault"]
		// memsw counts memory and swap together.
		if memsw, err := readUint(filepath.Join(dir, "memory.memsw.usage_in_bytes")); err == nil && memsw > u.MemoryUsage {
			u.SwapUsage = memsw - u.MemoryUsage
		}
	}
	if root, ok := roots["pids"]; ok {
		u.Processes, _ = readUint(filepath.Join(root, path, "pids.current"))
	}
	return u, nil
}

// readCgroup2 reads the cgroup v2 cgroup at dir.
func readCgroup2(dir string) (cgroupUsage, error) {
	var u cgroupUsage
	cpu, err := readFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return u, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	u.CPUNanos = parseKeyed(cpu)["usage_usec"] * 1000
	u.MemoryUsage, _ = readUint(filepath.Join(dir, "memory.current"))
	if limit, err := readUint(filepath.Join(dir, "memory.max")); err == nil && limit < unlimited { // "max" fails to parse: none
		u.MemoryLimit = limit
	}
	stat := readKeyed(filepath.Join(dir, "memory.stat"))
	u.WorkingSet = workingSet(u.MemoryUsage, stat["inactive_file"])
	u.RSS, u.PageFaults, u.MajorPageFaults = stat["anon"], stat["pgfault"], stat["pgmajfault"]
	u.SwapUsage, _ = readUint(filepath.Join(dir, "memory.swap.current"))
	u.Processes, _ = readUint(filepath.Join(dir, "pids.current"))
	u.CPUPressure = readPressure(filepath.Join(dir, "cpu.pressure"))
	u.MemoryPressure = readPressure(filepath.Join(dir, "memory.pressure"))
	u.IOPressure = readPressure(filepath.Join(dir, "io.pressure"))
	return u, nil
}

// readFile reads a small kernel file with open, read and close only.
func readFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// readUint reads a file holding one number.
func readUint(path string) (uint64, error) {
	b, err := readFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// readKeyed reads a file of "key value" lines (memory.stat, cpu.stat); nil when unreadable.
func readKeyed(path string) map[string]uint64 {
	b, _ := readFile(path)
	return parseKeyed(b)
}

func parseKeyed(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}
