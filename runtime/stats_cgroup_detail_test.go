package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func TestReadCgroupDetail(t *testing.T) {
	const path = "kubepods/pod1/c1"
	tests := []struct {
		desc  string
		files map[string]string
		read  func(root string) CgroupDetail
		want  CgroupDetail
	}{
		{
			desc: "cgroup v1",
			files: map[string]string{
				"cpuacct/" + path + "/cpuacct.stat":                  "user 250\nsystem 130\n",
				"cpu/" + path + "/cpu.stat":                          "nr_periods 40\nnr_throttled 7\nthrottled_time 3000000000\n",
				"cpu/" + path + "/cpu.cfs_period_us":                 "100000\n",
				"cpu/" + path + "/cpu.cfs_quota_us":                  "20000\n",
				"cpu/" + path + "/cpu.shares":                        "1024\n",
				"memory/" + path + "/memory.stat":                    "cache 1\npgfault 10\npgmajfault 1\ntotal_cache 4096\ntotal_mapped_file 512\ntotal_swap 0\ntotal_pgfault 12\ntotal_pgmajfault 2\n",
				"memory/" + path + "/memory.failcnt":                 "3\n",
				"memory/" + path + "/memory.max_usage_in_bytes":      "8192\n",
				"memory/" + path + "/memory.kmem.usage_in_bytes":     "1024\n",
				"memory/" + path + "/memory.limit_in_bytes":          "67108864\n",
				"memory/" + path + "/memory.memsw.limit_in_bytes":    "9223372036854771712\n",
				"memory/" + path + "/memory.soft_limit_in_bytes":     "9223372036854771712\n",
				"memory/" + path + "/memory.oom_control":             "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
				"pids/" + path + "/pids.max":                         "max\n",
				"blkio/" + path + "/blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n",
				"blkio/" + path + "/blkio.throttle.io_serviced":      "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
			},
			read: func(root string) CgroupDetail {
				roots := map[string]string{}
				for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "blkio"} {
					roots[c] = filepath.Join(root, c)
				}
				return readCgroupDetail1(roots, path)
			},
			want: CgroupDetail{
				CPUUserNanos: 2_500_000_000, CPUSystemNanos: 1_300_000_000,
				CFSPeriods: 40, CFSThrottledPeriods: 7, CFSThrottledNanos: 3_000_000_000,
				CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 1024,
				MemoryCache: 4096, MemoryMappedFile: 512, MemoryFailcnt: 3, MemoryMaxUsage: 8192, MemoryKernel: 1024,
				MemoryLimit: 64 << 20, PageFaults: 10, MajorPageFaults: 1, HierarchyPageFaults: 12, HierarchyMajorPageFaults: 2,
				OOMKills: 2, Blkio: []BlkioDevice{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}},
			},
		},
		{
			desc: "cgroup v2",
			files: map[string]string{
				path + "/cpu.stat":            "usage_usec 3800000\nuser_usec 2500000\nsystem_usec 1300000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 3000000\n",
				path + "/cpu.max":             "20000 100000\n",
				path + "/cpu.weight":          "39\n",
				path + "/memory.stat":         "anon 100\nfile 4096\nkernel 1024\nfile_mapped 512\npgfault 12\npgmajfault 2\n",
				path + "/memory.swap.current": "0\n",
				path + "/memory.peak":         "8192\n",
				path + "/memory.events":       "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n",
				path + "/memory.max":          "67108864\n",
				path + "/memory.swap.max":     "max\n",
				path + "/memory.low":          "0\n",
				path + "/pids.max":            "1024\n",
				path + "/io.stat":             "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
			},
			read: func(root string) CgroupDetail { return readCgroupDetail2(filepath.Join(root, path)) },
			want: CgroupDetail{
				CPUUserNanos: 2_500_000_000, CPUSystemNanos: 1_300_000_000,
				CFSPeriods: 40, CFSThrottledPeriods: 7, CFSThrottledNanos: 3_000_000_000,
				CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 2 + 38*262142/9999,
				MemoryCache: 4096, MemoryMappedFile: 512, MemoryFailcnt: 3, MemoryMaxUsage: 8192, MemoryKernel: 1024,
				MemoryLimit: 64 << 20, PageFaults: 12, MajorPageFaults: 2, HierarchyPageFaults: 12, HierarchyMajorPageFaults: 2,
				OOMKills: 2, ThreadsMax: 1024, Blkio: []BlkioDevice{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}},
			},
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, test.files)
			if got := test.read(root); !reflect.DeepEqual(got, test.want) {
				t.Errorf("got  %+v\nwant %+v", got, test.want)
			}
		})
	}
}

func TestSoftLimit(t *testing.T) {
	limits := "Limit                     Soft Limit           Hard Limit           Units\n" +
		"Max processes             unlimited            unlimited            processes\n" +
		"Max open files            1024                 1048576              files\n"
	tests := []struct {
		name string
		want uint64
	}{
		{"Max open files", 1024},
		{"Max processes", 0},
		{"Max locked memory", 0},
	}
	for _, test := range tests {
		if got := softLimit(limits, test.name); got != test.want {
			t.Errorf("softLimit(%q) = %d, want %d", test.name, got, test.want)
		}
	}
}

// A process's tasks, files and sockets are counted from /proc: this test process's own.
func TestReadTaskCounts(t *testing.T) {
	procs := filepath.Join(t.TempDir(), "cgroup.procs")
	writeFiles(t, filepath.Dir(procs), map[string]string{"cgroup.procs": "999999999\n" + strconv.Itoa(os.Getpid()) + "\n"})
	got := readTaskCounts(procs, uint32(os.Getpid()))
	if got.Processes != 1 || got.Threads < 1 || got.FileDescriptors < 3 || got.MaxOpenFiles == 0 {
		t.Errorf("counts of this process = %+v; want 1 process (the gone pid skipped), threads, its files and its open files limit", got)
	}
}
