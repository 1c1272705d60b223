// Package kmsg reads the kernel's log (/dev/kmsg) for the OOM kills it records.
//
// The kernel writes an "oom-kill:" record, naming the memory cgroup of the killed task, before the
// task dies. It is the one witness of an OOM kill that does not depend on the killed cgroup still
// existing: with the systemd cgroup driver the container's scope, and with it the memory cgroup's
// oom_kill count the runc shim watches, is removed as soon as its last process exits, and a slow
// shim then never reports the kill. The kubelet's cAdvisor reads the same records.
package kmsg

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
)

// Path is the kernel log device.
const Path = "/dev/kmsg"

// OOMKill is one "oom-kill:" record of the kernel log.
type OOMKill struct {
	// TaskMemcg is the memory cgroup of the killed task, from the root of the hierarchy
	// ("/kubepods.slice/…/berth-<id>.scope" or "/kubepods/…/<id>").
	TaskMemcg string
	// OOMMemcg is the cgroup whose limit was hit: TaskMemcg or one of its parents.
	OOMMemcg string
	// Task is the killed task's command name and Pid its PID in the kernel's initial namespace.
	Task string
	Pid  string
}

// OOMKilledIn says whether the kernel log records an OOM kill of a task in a memory cgroup
// whose last path element is leaf ("berth-<id>.scope", "<id>"). An unreadable log is an error;
// a kill the log no longer holds (it is a ring) is not found.
func OOMKilledIn(leaf string) (bool, error) {
	// A raw descriptor: an *os.File would hand the non-blocking device to Go's poller and
	// wait for the next record at the end of the log instead of returning.
	fd, err := syscall.Open(Path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: Path, Err: err}
	}
	defer syscall.Close(fd)
	kills, err := ReadOOMKills(rawReader(fd))
	for _, k := range kills {
		if lastElem(k.TaskMemcg) == leaf {
			return true, nil
		}
	}
	return false, err
}

// rawReader reads a file descriptor with read(2) itself.
type rawReader int

func (fd rawReader) Read(b []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func lastElem(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// ReadOOMKills reads kernel log records from r, one per read as /dev/kmsg gives them, until
// its end (EAGAIN on a non-blocking /dev/kmsg) and returns the OOM kills. Records overwritten
// while being read (EPIPE) are skipped.
func ReadOOMKills(r io.Reader) ([]OOMKill, error) {
	var kills []OOMKill
	// /dev/kmsg returns exactly one record per read and EINVAL if the buffer is too small for
	// it; a record is at most about 8 KiB (the kernel's CONSOLE_EXT_LOG_MAX).
	buf := make([]byte, 16<<10)
	for {
		n, err := r.Read(buf)
		switch {
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, io.EOF):
			return kills, nil
		case errors.Is(err, syscall.EPIPE):
			continue
		case err != nil:
			return kills, err
		}
		for _, line := range bytes.Split(buf[:n], []byte("\n")) {
			if k, ok := parseRecord(line); ok {
				kills = append(kills, k)
			}
		}
	}
}

// parseRecord parses "prio,seq,usec,flags;oom-kill:constraint=…,oom_memcg=…,task_memcg=…,task=…,pid=…,uid=…".
func parseRecord(line []byte) (OOMKill, bool) {
	_, msg, ok := bytes.Cut(line, []byte(";"))
	if !ok {
		return OOMKill{}, false
	}
	fields, ok := bytes.CutPrefix(msg, []byte("oom-kill:"))
	if !ok {
		return OOMKill{}, false
	}
	var k OOMKill
	// Cgroup paths hold no commas (systemd and kubelet names do not), the nodemask "(null)" or a
	// list in brackets holds none either; the task name may, so it is taken up to ",pid=".
	s := string(fields)
	if i := strings.Index(s, ",task="); i >= 0 {
		rest := s[i+len(",task="):]
		if j := strings.LastIndex(rest, ",pid="); j >= 0 {
			k.Task = rest[:j]
			pid, _, _ := strings.Cut(rest[j+len(",pid="):], ",")
			k.Pid = pid
		}
		s = s[:i]
	}
	for _, f := range strings.Split(s, ",") {
		key, value, _ := strings.Cut(f, "=")
		switch key {
		case "task_memcg":
			k.TaskMemcg = value
		case "oom_memcg":
			k.OOMMemcg = value
		}
	}
	return k, k.TaskMemcg != ""
}
