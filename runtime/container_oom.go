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

	"github.com/berth-runtime/berth/kmsg"
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
// send waits for the OOM event that may trail it, when the kernel's log cannot be read.
const oomKilledWait = 2 * time.Second

// oomKilled says whether the kernel OOM-killed the container: the shim said so, the OOM-kill
// count of its memory cgroup is above 0, or, for an exit by SIGKILL that berth did not send, the
// kernel's log records the kill. The shim reports the exit and the OOM on separate paths, and
// with the systemd driver the scope, with its memory cgroup's count, is gone as soon as its last
// process is (found by make vm-test: a slow node saw an OOM kill reported as Error); the
// kernel logs the kill before it sends the signal.
func (r *Runtime) oomKilled(c *Container, code uint32) bool {
	if c.oomReported.Load() {
		return true
	}
	// The container's cgroup; its leaf (the scope or directory name) depends only on the
	// container's id and the driver, so a pod that is gone still names it.
	var parent string
	if sb, err := r.sandboxes.get(c.SandboxID); err == nil {
		parent = sb.view().Config.GetLinux().GetCgroupParent()
	}
	path := r.cgroupDir(spec.CgroupsPath(parent, c.ID, r.settings.CgroupDriver))
	if memoryOOMKills(path, r.settings.CgroupV2) > 0 {
		return true
	}
	if code != 137 || c.killedByBerth.Load() {
		return false
	}
	found, err := r.oomKillLogged(filepath.Base(path))
	if err == nil {
		return found || c.oomReported.Load()
	}
	r.log.Debug("cannot read the kernel's log for OOM kills; waiting for the shim's event", "container", c.ID, "error", err)
	for deadline := time.Now().Add(oomKilledWait); !c.oomReported.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return c.oomReported.Load()
}

// oomKillLogged says whether the kernel's log records an OOM kill in the cgroup whose leaf is
// leaf: kmsg.OOMKilledIn, unless a test put another reader in r.oomLog.
func (r *Runtime) oomKillLogged(leaf string) (bool, error) {
	if r.oomLog != nil {
		return r.oomLog(leaf)
	}
	return kmsg.OOMKilledIn(leaf)
}

// memoryOOMKills reads the OOM-kill count of the memory cgroup at path (from the hierarchy's
// root); a cgroup that is gone counts 0.
func memoryOOMKills(path string, v2 bool) int {
	file := filepath.Join("/sys/fs/cgroup/memory", path, "memory.oom_control")
	if v2 {
		file = filepath.Join("/sys/fs/cgroup", path, "memory.events")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
