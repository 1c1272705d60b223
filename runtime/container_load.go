package runtime

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/berth-runtime/berth/runtime/logs"
)

// loadContainers rebuilds the containers from containerd and takes up the running ones again:
// their output is copied on from the same pipes (what they wrote meanwhile waits in the pipe),
// and their exit is tracked. A container that exited while berthd was away gets its exit code
// from its task.
func (r *Runtime) loadContainers(ctx context.Context) error {
	records, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q==%s", labelKind, kindContainer))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, rec := range records {
		c, err := loadContainer(rec)
		if err != nil {
			r.log.Error("cannot load container record; leaving it alone", "container", rec.ID, "error", err)
			continue
		}
		if c.State.State == ContainerRunning {
			r.reattach(ctx, c)
		}
		r.containers.add(c)
	}
	return nil
}

// reattach takes up a container that was running when berthd stopped.
func (r *Runtime) reattach(ctx context.Context, c *Container) {
	container, err := r.client.LoadContainer(ctx, c.ID)
	if err != nil {
		r.recordLostExit(ctx, c, nil, err)
		return
	}
	fifos := r.fifos(c)
	dio, err := cio.NewDirectIO(context.Background(), fifos)
	if err != nil {
		r.recordLostExit(ctx, c, nil, err)
		return
	}
	task, err := container.Task(ctx, func(*cio.FIFOSet) (cio.IO, error) { return dio, nil })
	if err != nil {
		dio.Cancel()
		dio.Close()
		r.recordLostExit(ctx, c, nil, err)
		return
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status == containerd.Stopped {
		dio.Cancel()
		dio.Close()
		r.recordLostExit(ctx, c, task, err)
		return
	}
	exitCh, err := task.Wait(context.Background())
	if err != nil {
		r.recordLostExit(ctx, c, task, err)
		return
	}
	var logFile *logs.File
	if c.LogPath != "" {
		if logFile, err = r.openLog(c); err != nil {
			r.log.Warn("cannot reopen a container's log; its output is discarded", "container", c.ID, "error", err)
		}
	}
	c.log = logFile
	c.exited = make(chan struct{})
	go r.monitor(c, task, exitCh, r.copyOutput(c, dio, logFile))
}

// recordLostExit records the exit of a container whose process ended while berthd was away,
// with the exit code its task kept when there is one.
func (r *Runtime) recordLostExit(ctx context.Context, c *Container, task containerd.Task, cause error) {
	c.State.State, c.State.FinishedAt, c.State.Reason = ContainerExited, time.Now(), ReasonError
	if task != nil {
		if st, err := task.Status(ctx); err == nil && st.Status == containerd.Stopped {
			c.State.ExitCode, c.State.FinishedAt = int32(st.ExitStatus), st.ExitTime
			if st.ExitStatus == 0 {
				c.State.Reason = ReasonCompleted
			}
			cause = nil
		}
		if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("cannot delete an exited container's task", "container", c.ID, "error", err)
		}
	}
	if cause != nil {
		c.State.ExitCode, c.State.Reason, c.State.Message = 255, "Unknown", cause.Error()
	}
	c.publish()
	if err := r.saveContainer(ctx, c); err != nil {
		r.log.Warn("cannot save a container's exit", "container", c.ID, "error", err)
	}
	r.log.Info("container exited while berthd was away", "container", c.ID, "exitCode", c.State.ExitCode)
}
