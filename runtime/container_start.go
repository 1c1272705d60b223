package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/logs"
	"github.com/berth-runtime/berth/runtime/testhook"
)

// drainTimeout bounds how long an exited container's output is awaited before its state is
// saved: a process the container left behind can hold the pipe open.
const drainTimeout = 2 * time.Second

// fifos are a container's stdio pipes, at fixed paths so that a restarted berthd finds them.
func (r *Runtime) fifos(c *Container) *cio.FIFOSet {
	dir := filepath.Join(r.containerDir(c.ID), "io")
	cfg := cio.Config{Stdout: filepath.Join(dir, "stdout"), Terminal: c.Config.GetTty()}
	if !cfg.Terminal {
		cfg.Stderr = filepath.Join(dir, "stderr")
	}
	if c.Config.GetStdin() {
		cfg.Stdin = filepath.Join(dir, "stdin")
	}
	return cio.NewFIFOSet(cfg, func() error { return os.RemoveAll(dir) })
}

// StartContainer starts a created container: its output is copied to its log file (the copier
// runs before the process does, so nothing is lost), and its exit is tracked.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	if c.State.State != ContainerCreated {
		return fmt.Errorf("container %s is %s, not created: %w", c.ID, c.State.State, errdefs.ErrFailedPrecondition)
	}
	if sb, err := r.sandboxes.get(c.SandboxID); err != nil || sb.view().State != SandboxReady {
		return fmt.Errorf("pod sandbox %s of container %s is not ready: %w", c.SandboxID, c.ID, errdefs.ErrFailedPrecondition)
	}

	steps := stepTimer{start: time.Now()}
	var logFile *logs.File
	if c.LogPath != "" {
		if logFile, err = r.openLog(c); err != nil {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
	}
	var (
		task      containerd.Task
		exitCh    <-chan containerd.ExitStatus
		copied    *sync.WaitGroup
		startedAt time.Time
	)
	for attempt := 1; ; attempt++ {
		fifos := r.fifos(c)
		if err = os.MkdirAll(filepath.Dir(fifos.Stdout), 0o700); err == nil {
			task, exitCh, copied, startedAt, err = r.startTask(ctx, c, fifos, logFile, &steps)
		}
		if err == nil {
			break
		}
		fifos.Close()
		if attempt == 1 && r.shimLeftDuringCreate(ctx, c.SandboxID, err) {
			continue
		}
		if logFile != nil {
			logFile.Close()
		}
		r.markFailedStart(ctx, c, err)
		return err
	}
	if c.Restore {
		// Restored: the images were read, and a second start would run nothing.
		c.Restore = false
		r.removeRestoreFiles(c.ID)
	}
	c.log = logFile
	c.exited = make(chan struct{})
	c.State.State, c.State.StartedAt, c.State.Pid = ContainerRunning, startedAt, task.Pid()
	c.running.Store(&task)
	c.publish()
	r.emitFor(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, c)
	if err := r.saveContainer(ctx, c); err != nil {
		r.log.Warn("cannot save a started container's state", "container", c.ID, "error", err)
	}
	steps.mark("save")
	r.log.Debug("container started", "container", c.ID, "sandbox", c.SandboxID, "pid", task.Pid(), "steps", steps.String())
	go r.monitor(c, task, exitCh, copied)
	return nil
}

// startTask creates and starts the container's task with its stdio on fifos, copying output to
// logFile (nil: discarded). copied is done once the output is drained; startedAt is taken just
// before the start, so that it never comes after an exit the process makes at once.
func (r *Runtime) startTask(ctx context.Context, c *Container, fifos *cio.FIFOSet, logFile *logs.File, steps *stepTimer) (task containerd.Task, exitCh <-chan containerd.ExitStatus, copied *sync.WaitGroup, startedAt time.Time, err error) {
	// The pipes outlive this request: they are the container's for its whole life.
	dio, err := cio.NewDirectIO(context.Background(), fifos)
	if err != nil {
		return nil, nil, nil, startedAt, fmt.Errorf("container %s stdio: %w", c.ID, err)
	}
	copied = r.copyOutput(c, dio, logFile)
	container, err := r.client.LoadContainer(ctx, c.ID)
	if err != nil {
		dio.Cancel()
		dio.Close()
		return nil, nil, nil, startedAt, err
	}
	steps.mark("io")
	var restore []containerd.NewTaskOpts
	if c.Restore {
		if err := r.criuAvailable(); err != nil {
			dio.Cancel()
			dio.Close()
			return nil, nil, nil, startedAt, fmt.Errorf("restore container %s: %w", c.ID, err)
		}
		os.RemoveAll(r.restoreWorkDir(c.ID))
		restore = append(restore, containerd.WithRestoreImagePath(r.restoreDir(c.ID)), containerd.WithRestoreWorkPath(r.restoreWorkDir(c.ID)))
	}
	sb, err := r.sandboxes.get(c.SandboxID)
	if err == nil {
		task, err = r.newTask(ctx, sb, container, func(string) (cio.IO, error) { return dio, nil }, restore...)
	}
	if err != nil {
		dio.Cancel()
		dio.Close()
		return nil, nil, nil, startedAt, fmt.Errorf("create task of container %s: %w", c.ID, err)
	}
	steps.mark("create")
	testhook.Hold(testhook.StartAfterTaskCreate)
	exitCh, err = task.Wait(context.Background())
	if err == nil {
		startedAt = time.Now()
		err = task.Start(ctx)
	}
	if err != nil {
		task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		if c.Restore {
			err = fmt.Errorf("%w%s", err, criuLogTail(r.restoreWorkDir(c.ID), "restore.log"))
		}
		return nil, nil, nil, startedAt, fmt.Errorf("start container %s: %w", c.ID, err)
	}
	steps.mark("start")
	testhook.Hold(testhook.StartAfterTaskStart)
	return task, exitCh, copied, startedAt, nil
}

// copyOutput copies the container's stdout and stderr into its log file until they close, and
// to the clients attached on the way; the container's stdio is recorded for Attach.
func (r *Runtime) copyOutput(c *Container, dio *cio.DirectIO, logFile *logs.File) *sync.WaitGroup {
	sio := &stdio{}
	if dio.Stdin != nil {
		sio.stdin = dio.Stdin
	}
	c.io = sio
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		pipe io.Reader
		out  *fanout
	}{{logs.Stdout, dio.Stdout, &sio.stdout}, {logs.Stderr, dio.Stderr, &sio.stderr}} {
		if s.pipe == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.out.close()
			tee := io.TeeReader(s.pipe, s.out)
			var err error
			if logFile != nil {
				err = logFile.Copy(s.name, tee, logs.DefaultMaxLine)
			} else {
				_, err = discard(tee)
			}
			if err != nil {
				r.log.Warn("container output lost", "container", c.ID, "stream", s.name, "error", err)
			}
		}()
	}
	return &wg
}

func discard(r interface{ Read([]byte) (int, error) }) (int64, error) {
	buf := make([]byte, 32*1024)
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err != nil {
			return n, nil
		}
	}
}

// markFailedStart records a start that failed as an exit, as the kubelet expects to see it.
func (r *Runtime) markFailedStart(ctx context.Context, c *Container, cause error) {
	c.State.State, c.State.FinishedAt = ContainerExited, time.Now()
	c.State.ExitCode, c.State.Reason, c.State.Message = 128, "StartError", cause.Error()
	c.publish()
	r.emitFor(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, c)
	if err := r.saveContainer(context.WithoutCancel(ctx), c); err != nil {
		r.log.Warn("cannot save a failed start", "container", c.ID, "error", err)
	}
}

// monitor waits for the container's task to exit, then records the exit (OOMKilled when the
// kernel killed it for memory), waits for its output to drain and deletes the task.
func (r *Runtime) monitor(c *Container, task containerd.Task, exitCh <-chan containerd.ExitStatus, copied *sync.WaitGroup) {
	st, task := r.awaitExit(c, task, exitCh)
	code, exitedAt, err := st.Result()
	oom := r.oomKilled(c, code)
	drained := make(chan struct{})
	go func() { copied.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		r.log.Warn("container output still open after it exited", "container", c.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, derr := task.Delete(ctx); derr != nil && !errdefs.IsNotFound(derr) {
		r.log.Warn("cannot delete an exited container's task", "container", c.ID, "error", derr)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.State.State, c.State.ExitCode, c.State.FinishedAt = ContainerExited, int32(code), exitedAt
	if exitedAt.IsZero() {
		c.State.FinishedAt = time.Now()
	}
	switch {
	case err != nil:
		c.State.Reason, c.State.Message = ReasonError, err.Error()
	case oom:
		c.State.Reason = ReasonOOMKilled
	case code == 0:
		c.State.Reason = ReasonCompleted
	default:
		c.State.Reason = ReasonError
	}
	c.publish()
	r.emitFor(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, c)
	if err := r.saveContainer(ctx, c); err != nil {
		r.log.Warn("cannot save a container's exit", "container", c.ID, "error", err)
	}
	if c.log != nil {
		c.log.Close()
	}
	if c.io != nil {
		c.io.closeStdin()
	}
	close(c.exited)
}

// awaitExit waits for the exit of a container's task. A wait that breaks because containerd
// went away (killed, restarted) is not an exit: the task and its shim live on, so the wait is
// taken up again on the containerd that comes back, which reports an exit that happened
// meanwhile at once.
func (r *Runtime) awaitExit(c *Container, task containerd.Task, exitCh <-chan containerd.ExitStatus) (containerd.ExitStatus, containerd.Task) {
	for {
		st := <-exitCh
		if st.Error() == nil {
			return st, task
		}
		r.log.Info("lost the wait on a container's task; waiting again", "container", c.ID, "error", st.Error())
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t, err := r.task(ctx, c.ID)
			if err == nil {
				var ch <-chan containerd.ExitStatus
				if ch, err = t.Wait(context.Background()); err == nil {
					cancel()
					task, exitCh = t, ch
					break
				}
			}
			cancel()
			sb, _ := r.sandboxes.get(c.SandboxID)
			ownShim := sb != nil && sb.OwnShim
			if errdefs.IsNotFound(err) || (ownShim && r.shimGone(sb, err)) {
				// The task is gone for good: report it as an exit of unknown status. What a
				// dead shim of the pod's own leaves, berth cleans up (containerd does it for
				// the shims it starts).
				if ownShim {
					r.log.Warn("the pod's shim died under a running container", "container", c.ID, "sandbox", sb.ID, "error", err)
					r.reapOrphanedTask(c, task)
				}
				return *containerd.NewExitStatus(containerd.UnknownExitStatus, time.Now(), fmt.Errorf("task of container %s is gone: %w", c.ID, err)), task
			}
			time.Sleep(delay)
		}
	}
}

// openLog opens a container's log file, which lies inside its pod's log directory.
func (r *Runtime) openLog(c *Container) (*logs.File, error) {
	sb, err := r.sandboxes.get(c.SandboxID)
	if err != nil {
		return nil, err
	}
	dir := sb.Config.GetLogDirectory()
	rel, err := filepath.Rel(dir, c.LogPath)
	if err != nil {
		return nil, err
	}
	return logs.Open(dir, rel)
}
