package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"

	"github.com/berth-runtime/berth/runtime/spec"
)

// watchOOMs records the OOM kills the shims report (containerd's /tasks/oom events: the runc
// shim watches each task's memory cgroup, v1 or v2, cgroupfs or systemd) on the container, so
// that its exit says OOMKilled, until ctx ends. The subscription is made again when containerd
// restarts.
func (r *Runtime) watchOOMs(ctx context.Context) {
	for ctx.Err() == nil {
		events, errs := r.client.Subscribe(ctx, `topic=="/tasks/oom"`)
	receive:
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					r.log.Debug("containerd's event stream ended; subscribing again", "error", err)
				}
				break receive
			case env := <-events:
				if env == nil || env.Event == nil {
					continue
				}
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					continue
				}
				if oom, ok := v.(*eventtypes.TaskOOM); ok {
					if c, err := r.containers.get(oom.ContainerID); err == nil {
						c.oomReported.Store(true)
						r.log.Debug("container OOM-killed", "container", c.ID)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// oomKilledWait bounds how long an exit that looks like a kill (SIGKILL's 137) that berth did not
// send waits for the OOM event that may trail it: the shim reports the exit and the OOM on
// separate paths, and with the systemd driver the scope, with the memory cgroup's oom_kill
// count, is gone as soon as its last process is (found by make vm-test: a slow node saw an OOM
// kill reported as Error).
const oomKilledWait = 2 * time.Second

// oomKilled says whether the kernel OOM-killed the container: the shim said so, or the OOM-kill
// count of its memory cgroup (which outlives the process until the task is deleted) is above 0.
func (r *Runtime) oomKilled(c *Container, code uint32) bool {
	if code == 137 && !c.killedByBerth.Load() {
		for deadline := time.Now().Add(oomKilledWait); !c.oomReported.Load() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if c.oomReported.Load() {
		return true
	}
	sb, err := r.sandboxes.get(c.SandboxID)
	if err != nil {
		return false
	}
	path := r.cgroupDir(spec.CgroupsPath(sb.view().Config.GetLinux().GetCgroupParent(), c.ID, r.settings.CgroupDriver))
	file := filepath.Join("/sys/fs/cgroup/memory", path, "memory.oom_control")
	if r.settings.CgroupV2 {
		file = filepath.Join("/sys/fs/cgroup", path, "memory.events")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
			n, _ := strconv.Atoi(f[1])
			return n > 0
		}
	}
	return false
}
