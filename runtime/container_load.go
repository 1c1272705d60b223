package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
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
		if c.State.State == ContainerCreated {
			r.adoptInterruptedStart(ctx, c)
		}
		if c.State.State == ContainerRunning {
			r.reattach(ctx, c)
		}
		r.containers.add(c)
	}
	owned := map[string]bool{}
	for _, rec := range records {
		owned[rec.ID] = true // loaded or not: a record that could not be loaded keeps its snapshot
	}
	return r.removeOrphanSnapshots(ctx, owned)
}

// adoptInterruptedStart looks for the task of a container recorded as created: a berthd that
// died during StartContainer can have left one. A task that ran (and may have exited since) is
// taken up as the container's; one that was created but never started is deleted, so that the
// next StartContainer starts afresh.
func (r *Runtime) adoptInterruptedStart(ctx context.Context, c *Container) {
	task, err := r.task(ctx, c.ID)
	if err != nil {
		return // no task: nothing was started
	}
	st, err := task.Status(ctx)
	if err == nil && (st.Status == containerd.Running || st.Status == containerd.Stopped) && task.Pid() != 0 {
		r.log.Warn("taking up a container whose start a previous berthd did not record", "container", c.ID)
		c.State.State, c.State.StartedAt, c.State.Pid = ContainerRunning, time.Now(), task.Pid()
		if err := r.saveContainer(ctx, c); err != nil {
			r.log.Warn("cannot save a taken-up container's state", "container", c.ID, "error", err)
		}
		return
	}
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		r.log.Warn("cannot delete the unstarted task of an interrupted start", "container", c.ID, "error", err)
	}
}

// removeOrphanSnapshots removes the writable snapshots no container owns: a berthd that died in
// CreateContainer between preparing the snapshot and recording the container leaves one. Image
// unpacking's own snapshots ("extract-…") are left alone.
func (r *Runtime) removeOrphanSnapshots(ctx context.Context, owned map[string]bool) error {
	sn := r.client.SnapshotService(snapshotter)
	var orphans []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindActive || strings.HasPrefix(info.Name, "extract-") {
			return nil
		}
		if !owned[info.Name] {
			orphans = append(orphans, info.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, name := range orphans {
		r.log.Warn("removing a snapshot no container owns (left by an interrupted create)", "snapshot", name)
		if err := sn.Remove(ctx, name); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("cannot remove an orphaned snapshot", "snapshot", name, "error", err)
		}
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
	if err := os.MkdirAll(filepath.Dir(fifos.Stdout), 0o700); err != nil {
		r.recordLostExit(ctx, c, nil, err)
		return
	}
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
	if st.Status == containerd.Paused {
		// berth pauses a container only while it checkpoints it: a berthd killed then left it
		// frozen.
		r.log.Info("thawing a container a checkpoint left frozen", "container", c.ID)
		if err := task.Resume(ctx); err != nil {
			r.log.Error("cannot thaw a container a checkpoint left frozen", "container", c.ID, "error", err)
		}
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
	c.running.Store(&task)
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
