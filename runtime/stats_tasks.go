package runtime

import (
	"os"
	"strconv"
	"strings"
)

// TaskCounts are a container's processes and threads, their open files and sockets, and the
// soft limit on open files of its first process.
type TaskCounts struct {
	Processes, Threads, FileDescriptors, Sockets uint64
	MaxOpenFiles                                 uint64 // 0: unknown or unlimited
}

// readTaskCounts counts the tasks of the processes listed in procsFile (a cgroup.procs file)
// in /proc; initPid is the container's first process.
func readTaskCounts(procsFile string, initPid uint32) TaskCounts {
	var t TaskCounts
	for f := range strings.FieldsSeq(readText(procsFile)) {
		if _, err := strconv.ParseUint(f, 10, 32); err != nil {
			continue
		}
		proc := "/proc/" + f
		tasks, err := os.ReadDir(proc + "/task")
		if err != nil {
			continue // gone meanwhile
		}
		t.Processes++
		t.Threads += uint64(len(tasks))
		fds, _ := os.ReadDir(proc + "/fd")
		t.FileDescriptors += uint64(len(fds))
		for _, fd := range fds {
			if target, err := os.Readlink(proc + "/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, "socket:") {
				t.Sockets++
			}
		}
	}
	if initPid != 0 {
		t.MaxOpenFiles = softLimit(readText("/proc/"+strconv.FormatUint(uint64(initPid), 10)+"/limits"), "Max open files")
	}
	return t
}

// softLimit reads a soft limit from a /proc/<pid>/limits text ("Max open files  1024  4096
// files"); 0 for unlimited or absent.
func softLimit(limits, name string) uint64 {
	for line := range strings.SplitSeq(limits, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseUint(f[0], 10, 64) // "unlimited" does not parse: 0
		return v
	}
	return 0
}
