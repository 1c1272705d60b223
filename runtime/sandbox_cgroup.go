package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/berth-runtime/berth/runtime/spec"
)

// cgroupRemoveWait bounds how long removing a container or pod waits for the last processes
// to leave its cgroup (a killed task's are reaped a moment after its shim reports the exit)
// before the cgroup is left to the pending sweep.
const cgroupRemoveWait = 5 * time.Second

// pendingSweepEvery is how often the cgroups left to the pending sweep are tried again.
const pendingSweepEvery = 30 * time.Second

// removeCgroup removes a container's or a pod's cgroup (an OCI cgroups path of the node's
// driver) from every hierarchy. One still busy after cgroupRemoveWait, or that cannot be
// removed now, is kept in the pending list, which the health loop and the next berthd sweep.
func (r *Runtime) removeCgroup(ctx context.Context, path string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cgroupRemoveWait)
	defer cancel()
	err := r.cgroups.Remove(ctx, path)
	if err == nil {
		return
	}
	if aerr := r.pendingCgroups.Add(r.cgroupDriver, path); aerr != nil {
		r.log.Error("cannot remove a cgroup nor keep it for later", "cgroup", path, "error", errors.Join(err, aerr))
		return
	}
	r.log.Info("cgroup not removable yet; it will be tried again", "cgroup", path, "error", err)
}

// removePodCgroups removes the cgroup of the pod's infra process (runc leaves it when it is
// cut off) and, when the pod was the last of its cgroup parent and berth made that, the parent
// with whatever empty cgroups runc left below it (a container's, when runc create was killed
// before it saved its state). It runs once per pod, as the pod goes.
func (r *Runtime) removePodCgroups(ctx context.Context, sb *Sandbox) {
	if sb.cgroupsRemoved {
		return
	}
	sb.cgroupsRemoved = true
	parent := sb.Config.GetLinux().GetCgroupParent()
	r.removeCgroup(ctx, spec.CgroupsPath(parent, sb.ID, r.cgroupDriver))
	if r.cgroupParents.Leave(parent) {
		r.removeCgroup(ctx, parent)
	}
}

// removeOrphanedCgroupParents removes the cgroup parents berth made whose last pod went while
// no berthd was there to see it. Load calls it once every pod is counted.
func (r *Runtime) removeOrphanedCgroupParents(ctx context.Context) {
	orphans, err := r.cgroupParents.Orphans()
	if err != nil {
		r.log.Warn("cgroup parents berth made", "error", err)
	}
	for _, parent := range orphans {
		r.removeCgroup(ctx, parent)
	}
}

// sweepPendingCgroups tries the pending cgroups again.
func (r *Runtime) sweepPendingCgroups(ctx context.Context) {
	if r.pendingCgroups.Len() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, cgroupRemoveWait)
	defer cancel()
	left, err := r.pendingCgroups.Sweep(ctx)
	if left > 0 {
		r.log.Debug("cgroups still not removable", "cgroups", left, "error", err)
	} else if err != nil {
		r.log.Warn("pending cgroups", "error", err)
	}
}
