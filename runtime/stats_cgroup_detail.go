package runtime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupDetail is what a container's cgroup says beyond its stats, for the cAdvisor-style
// metrics (ListPodSandboxMetrics): CPU split and throttling, memory by kind, failures and limits,
// OOM kills, the task limit and block I/O. Zero where the node's cgroups do not report it.
type CgroupDetail struct {
	CPUUserNanos, CPUSystemNanos                       uint64
	CFSPeriods, CFSThrottledPeriods, CFSThrottledNanos uint64
	CPUPeriod, CPUShares                               uint64
	CPUQuota                                           int64 // -1: none
	MemoryCache, MemoryMappedFile, MemorySwap          uint64
	MemoryFailcnt, MemoryMaxUsage, MemoryKernel        uint64
	MemoryLimit, MemorySwapLimit, MemoryReservation    uint64 // 0: none
	PageFaults, MajorPageFaults                        uint64 // the cgroup's own
	HierarchyPageFaults, HierarchyMajorPageFaults      uint64 // with its descendants'
	OOMKills                                           uint64
	ThreadsMax                                         uint64 // 0: none
	Blkio                                              []BlkioDevice
}

// BlkioDevice is a cgroup's I/O on one block device.
type BlkioDevice struct {
	Major, Minor                         uint64
	Name                                 string // /dev/vda; "" if unknown
	ReadBytes, WriteBytes, Reads, Writes uint64
}

// userHZ is the unit of cgroup v1's cpuacct.stat (USER_HZ, 100 on every Linux architecture
// the kubelet runs on).
const userHZ = 100

// readCgroupDetail reads the detail of the cgroup at path, below the hierarchies' roots
// (Runtime.cgroupDir).
func readCgroupDetail(path string, v2 bool) CgroupDetail {
	var d CgroupDetail
	if v2 {
		d = readCgroupDetail2(filepath.Join("/sys/fs/cgroup", path))
	} else {
		d = readCgroupDetail1(v1Roots(), path)
	}
	for i := range d.Blkio {
		d.Blkio[i].Name = blockDeviceName(d.Blkio[i].Major, d.Blkio[i].Minor)
	}
	return d
}

// readCgroupDetail1 reads a cgroup v1 cgroup at path in the hierarchies of roots.
func readCgroupDetail1(roots map[string]string, path string) CgroupDetail {
	d := CgroupDetail{CPUQuota: -1}
	if root, ok := roots["cpuacct"]; ok {
		st := readKeyed(filepath.Join(root, path, "cpuacct.stat"))
		d.CPUUserNanos, d.CPUSystemNanos = st["user"]*(1e9/userHZ), st["system"]*(1e9/userHZ)
	}
	if root, ok := roots["cpu"]; ok {
		dir := filepath.Join(root, path)
		st := readKeyed(filepath.Join(dir, "cpu.stat"))
		d.CFSPeriods, d.CFSThrottledPeriods, d.CFSThrottledNanos = st["nr_periods"], st["nr_throttled"], st["throttled_time"]
		d.CPUPeriod, _ = readUint(filepath.Join(dir, "cpu.cfs_period_us"))
		d.CPUShares, _ = readUint(filepath.Join(dir, "cpu.shares"))
		if q, err := readInt(filepath.Join(dir, "cpu.cfs_quota_us")); err == nil {
			d.CPUQuota = q
		}
	}
	if root, ok := roots["memory"]; ok {
		dir := filepath.Join(root, path)
		st := readKeyed(filepath.Join(dir, "memory.stat"))
		d.MemoryCache, d.MemoryMappedFile, d.MemorySwap = st["total_cache"], st["total_mapped_file"], st["total_swap"]
		d.PageFaults, d.MajorPageFaults = st["pgfault"], st["pgmajfault"]
		d.HierarchyPageFaults, d.HierarchyMajorPageFaults = st["total_pgfault"], st["total_pgmajfault"]
		d.MemoryFailcnt, _ = readUint(filepath.Join(dir, "memory.failcnt"))
		d.MemoryMaxUsage, _ = readUint(filepath.Join(dir, "memory.max_usage_in_bytes"))
		d.MemoryKernel, _ = readUint(filepath.Join(dir, "memory.kmem.usage_in_bytes"))
		d.MemoryLimit = limit(readUint(filepath.Join(dir, "memory.limit_in_bytes")))
		d.MemorySwapLimit = limit(readUint(filepath.Join(dir, "memory.memsw.limit_in_bytes")))
		d.MemoryReservation = limit(readUint(filepath.Join(dir, "memory.soft_limit_in_bytes")))
		d.OOMKills = readKeyed(filepath.Join(dir, "memory.oom_control"))["oom_kill"]
	}
	if root, ok := roots["pids"]; ok {
		d.ThreadsMax = limit(readUint(filepath.Join(root, path, "pids.max"))) // "max" does not parse: none
	}
	if root, ok := roots["blkio"]; ok {
		dir := filepath.Join(root, path)
		d.Blkio = parseBlkio1(readText(filepath.Join(dir, "blkio.throttle.io_service_bytes")),
			readText(filepath.Join(dir, "blkio.throttle.io_serviced")))
	}
	return d
}

// readCgroupDetail2 reads the cgroup v2 cgroup at dir.
func readCgroupDetail2(dir string) CgroupDetail {
	d := CgroupDetail{CPUQuota: -1}
	cpu := readKeyed(filepath.Join(dir, "cpu.stat"))
	d.CPUUserNanos, d.CPUSystemNanos = cpu["user_usec"]*1000, cpu["system_usec"]*1000
	d.CFSPeriods, d.CFSThrottledPeriods, d.CFSThrottledNanos = cpu["nr_periods"], cpu["nr_throttled"], cpu["throttled_usec"]*1000
	if quota, period, ok := strings.Cut(strings.TrimSpace(readText(filepath.Join(dir, "cpu.max"))), " "); ok {
		d.CPUPeriod, _ = strconv.ParseUint(period, 10, 64)
		if q, err := strconv.ParseInt(quota, 10, 64); err == nil {
			d.CPUQuota = q
		}
	}
	if w, err := readUint(filepath.Join(dir, "cpu.weight")); err == nil && w > 0 {
		d.CPUShares = 2 + (w-1)*262142/9999 // the inverse of the kubelet's shares-to-weight
	}
	mem := readKeyed(filepath.Join(dir, "memory.stat"))
	d.MemoryCache, d.MemoryMappedFile, d.MemoryKernel = mem["file"], mem["file_mapped"], mem["kernel"]
	d.PageFaults, d.MajorPageFaults = mem["pgfault"], mem["pgmajfault"]
	d.HierarchyPageFaults, d.HierarchyMajorPageFaults = d.PageFaults, d.MajorPageFaults // v2's counts are hierarchical
	d.MemorySwap, _ = readUint(filepath.Join(dir, "memory.swap.current"))
	d.MemoryMaxUsage, _ = readUint(filepath.Join(dir, "memory.peak"))
	events := readKeyed(filepath.Join(dir, "memory.events"))
	d.MemoryFailcnt, d.OOMKills = events["max"], events["oom_kill"]
	d.MemoryLimit = limit(readUint(filepath.Join(dir, "memory.max")))
	d.MemorySwapLimit = limit(readUint(filepath.Join(dir, "memory.swap.max")))
	d.MemoryReservation = limit(readUint(filepath.Join(dir, "memory.low")))
	d.ThreadsMax = limit(readUint(filepath.Join(dir, "pids.max")))
	d.Blkio = parseIOStat(readText(filepath.Join(dir, "io.stat")))
	return d
}

// limit is a limit file's value, 0 for none ("max", or cgroup v1's huge number).
func limit(v uint64, err error) uint64 {
	if err != nil || v >= unlimited {
		return 0
	}
	return v
}

func readText(path string) string {
	b, _ := readFile(path)
	return string(b)
}

func readInt(path string) (int64, error) {
	b, err := readFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// parseBlkio1 parses cgroup v1's two blkio files ("8:0 Read 4096" lines, and a Total): the
// bytes and the operations by device.
func parseBlkio1(bytesText, opsText string) []BlkioDevice {
	var out []BlkioDevice
	index := map[[2]uint64]int{}
	for _, file := range []struct {
		text        string
		read, write func(*BlkioDevice) *uint64
	}{
		{bytesText, func(d *BlkioDevice) *uint64 { return &d.ReadBytes }, func(d *BlkioDevice) *uint64 { return &d.WriteBytes }},
		{opsText, func(d *BlkioDevice) *uint64 { return &d.Reads }, func(d *BlkioDevice) *uint64 { return &d.Writes }},
	} {
		for line := range strings.SplitSeq(file.text, "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || (f[1] != "Read" && f[1] != "Write") {
				continue
			}
			major, minor, ok := parseDevice(f[0])
			v, err := strconv.ParseUint(f[2], 10, 64)
			if !ok || err != nil {
				continue
			}
			i, seen := index[[2]uint64{major, minor}]
			if !seen {
				i = len(out)
				index[[2]uint64{major, minor}] = i
				out = append(out, BlkioDevice{Major: major, Minor: minor})
			}
			counter := file.read
			if f[1] == "Write" {
				counter = file.write
			}
			*counter(&out[i]) = v
		}
	}
	return out
}

// parseIOStat parses cgroup v2's io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...").
func parseIOStat(text string) []BlkioDevice {
	var out []BlkioDevice
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		major, minor, ok := parseDevice(f[0])
		if !ok {
			continue
		}
		d := BlkioDevice{Major: major, Minor: minor}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				d.ReadBytes = n
			case "wbytes":
				d.WriteBytes = n
			case "rios":
				d.Reads = n
			case "wios":
				d.Writes = n
			}
		}
		out = append(out, d)
	}
	return out
}

func parseDevice(s string) (major, minor uint64, ok bool) {
	a, b, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.ParseUint(a, 10, 64)
	minor, err2 := strconv.ParseUint(b, 10, 64)
	return major, minor, err1 == nil && err2 == nil
}

// blockDeviceName is the /dev name of a block device ("/dev/vda"), from sysfs; "" if unknown.
func blockDeviceName(major, minor uint64) string {
	b, err := os.ReadFile("/sys/dev/block/" + strconv.FormatUint(major, 10) + ":" + strconv.FormatUint(minor, 10) + "/uevent")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "DEVNAME="); ok {
			return "/dev/" + name
		}
	}
	return ""
}
