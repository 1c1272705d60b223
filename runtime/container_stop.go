package runtime

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/signal"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopContainer stops a running container: the image's stop signal (SIGTERM by default), then
// SIGKILL when it has not exited after timeout seconds. Per the CRI (api.proto) it is idempotent:
// a stopped container, or one that does not exist, is no error.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout int64) error {
	c, err := r.loadedContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.stopContainer(ctx, c, time.Duration(timeout)*time.Second)
}

// stopContainer signals and waits without holding c.mu: the exit monitor takes it to record the
// exit.
func (r *Runtime) stopContainer(ctx context.Context, c *Container, grace time.Duration) error {
	v := c.view()
	if v.State.State != ContainerRunning {
		return nil
	}
	c.mu.Lock()
	exited := c.exited
	c.mu.Unlock()
	task, err := r.task(ctx, c.ID)
	if errdefs.IsNotFound(err) {
		<-exited // the monitor is recording the exit
		return nil
	}
	if err != nil {
		return err
	}
	if grace > 0 {
		sig := syscall.SIGTERM
		if c.StopSignal != "" {
			if s, err := signal.ParseSignal(c.StopSignal); err == nil {
				sig = s
			}
		}
		if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
			if exitedUnderKill(ctx, exited, err) {
				return nil
			}
			return fmt.Errorf("signal container %s: %w", c.ID, err)
		}
		select {
		case <-exited:
			return nil
		case <-time.After(grace):
		case <-ctx.Done():
			return fmt.Errorf("stop container %s: %w", c.ID, ctx.Err())
		}
	}
	c.killedByBerth.Store(true) // its 137 is berth's SIGKILL, no OOM kill to wait for
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) && !exitedUnderKill(ctx, exited, err) {
		return fmt.Errorf("kill container %s: %w", c.ID, err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("container %s did not exit after SIGKILL: %w", c.ID, ctx.Err())
	}
}

// exitedUnderKill reports whether a kill failed with err because the container exited under it:
// the exit monitor deletes an exited task, containerd then asks the pod's shim to shut down and
// a shim with no task left exits, so a kill that reaches it then finds its connection closed
// ("ttrpc: closed"). The exit is then recorded within moments; waited for here, a few seconds at
// most.
func exitedUnderKill(ctx context.Context, exited <-chan struct{}, err error) bool {
	if !shimClosed(err) {
		return false
	}
	select {
	case <-exited:
		return true
	case <-time.After(exitAfterClosedShim):
	case <-ctx.Done():
	}
	return false
}

// exitAfterClosedShim bounds the wait for the exit of a container whose shim closed under a kill.
const exitAfterClosedShim = 5 * time.Second

// task returns the container's task.
func (r *Runtime) task(ctx context.Context, id string) (containerd.Task, error) {
	container, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return container.Task(ctx, nil)
}

// liveTask is the task of running container c: the one kept since its start (or since berthd
// took it up at a restart), else containerd's.
func (r *Runtime) liveTask(ctx context.Context, c *Container) (containerd.Task, error) {
	if t := c.running.Load(); t != nil {
		return *t, nil
	}
	return r.task(ctx, c.ID)
}

// RemoveContainer removes a container, killing it first if it runs: its task, snapshot, record
// and stdio pipes go (its log file stays: the kubelet owns it). Per the CRI (api.proto) removing a
// container that does not exist is no error.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	c, err := r.loadedContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.removeContainer(ctx, c)
}

func (r *Runtime) removeContainer(ctx context.Context, c *Container) error {
	if err := r.stopContainer(ctx, c, 0); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	container, err := r.client.LoadContainer(ctx, c.ID)
	if err == nil {
		if task, terr := container.Task(ctx, nil); terr == nil {
			// A task that never started (or whose exit was not collected) still holds the shim.
			if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("delete task of container %s: %w", c.ID, err)
			}
		}
		// runc removes the container's cgroup when it deletes the task; one it made and could
		// not record (runc create cut off by a killed berthd) is removed here.
		if s, err := container.Spec(ctx); err == nil && s.Linux != nil && s.Linux.CgroupsPath != "" {
			r.removeCgroup(ctx, s.Linux.CgroupsPath)
		}
		if err := container.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: %w", c.ID, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	if err := os.RemoveAll(r.containerDir(c.ID)); err != nil {
		return err
	}
	r.removeRestoreFiles(c.ID)
	c.removed = true
	r.containers.remove(c)
	r.stats.forget(c.ID)
	r.emitFor(runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, c)
	return nil
}
