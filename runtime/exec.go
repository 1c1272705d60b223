package runtime

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// ExecOutputCap is the most of each stream ExecSync keeps; the rest is dropped and the output
// ends with TruncatedMarker.
const ExecOutputCap = 16 << 20

// ExecResultBudget is the most stdout and stderr together can take in an ExecSync answer: the
// kubelet's CRI client refuses messages over 16 MiB, so the answer must fit in one with room
// for the rest of it. When both streams together are over, the larger one is cut further.
const ExecResultBudget = 16<<20 - 4<<10

// TruncatedMarker ends the output of an ExecSync stream that was cut.
const TruncatedMarker = "\n[output truncated by berth]\n"

// ExecResult is what an ExecSync gave.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// ExecSync runs cmd in a running container and waits for it, up to timeout (0: no limit, but the
// request's own deadline). A command that runs past its timeout is killed and the call fails
// with a deadline error. Output beyond ExecOutputCap per stream is dropped.
func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecResult, error) {
	if len(cmd) == 0 {
		return nil, fmt.Errorf("cmd: empty: %w", errdefs.ErrInvalidArgument)
	}
	stdout, stderr := &cappedBuffer{limit: ExecOutputCap}, &cappedBuffer{limit: ExecOutputCap}
	e, err := r.startExec(ctx, id, cmd, false, cio.WithStreams(nil, stdout, stderr))
	if err != nil {
		return nil, err
	}
	heldOpen := false
	defer func() {
		if heldOpen {
			// The shim waits (10 s) for the output to end before it deletes the process: the
			// answer does not wait with it.
			go e.delete(context.WithoutCancel(ctx))
			return
		}
		e.delete(ctx)
	}()
	process, exitCh := e.process, e.exitCh

	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	select {
	case st := <-exitCh:
		e.exited = true
		code, _, err := st.Result()
		if err != nil {
			return nil, err
		}
		// The process has exited; its output is complete once the pipes are drained, unless
		// a process it left behind holds them open (containerd's GHSA-7jxh-36q5-gcqv): then
		// what came within execDrainTimeout is the answer.
		if heldOpen = !drainExecIO(process.IO(), execDrainTimeout); heldOpen {
			r.log.Debug("exec output still held open after the exec exited; answering with what came", "container", id, "exec", process.ID())
		}
		out, errOut := fitBudget(stdout.Bytes(), stderr.Bytes(), ExecResultBudget)
		return &ExecResult{Stdout: out, Stderr: errOut, ExitCode: int32(code)}, nil
	case <-deadline:
		r.killExec(process, exitCh)
		return nil, fmt.Errorf("command %q timed out after %s: %w", strings.Join(cmd, " "), timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		r.killExec(process, exitCh)
		return nil, fmt.Errorf("command %q: %w", strings.Join(cmd, " "), ctx.Err())
	}
}

// execDrainTimeout bounds the wait for an exited exec's output to end.
const execDrainTimeout = 2 * time.Second

// drainExecIO waits until the copying of io's streams has ended, for timeout at most; it then
// closes them, which ends the copying. It reports whether the streams had ended by themselves.
func drainExecIO(io cio.IO, timeout time.Duration) bool {
	drained := make(chan struct{})
	go func() {
		io.Wait()
		close(drained)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-drained:
		return true
	case <-t.C:
		io.Cancel()
		io.Close()
		<-drained
		return false
	}
}

// newExec makes (but does not start) a process running cmd in a running container, as the
// container's own process runs (user, environment, capabilities, working directory).
func (r *Runtime) newExec(ctx context.Context, id string, cmd []string, tty bool, streams cio.Opt) (*Container, containerd.Process, error) {
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if c.view().State.State != ContainerRunning {
		return nil, nil, fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	task, err := r.liveTask(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s is not running: %v: %w", c.ID, err, errdefs.ErrFailedPrecondition)
	}
	proc := c.process
	if proc == nil {
		container, err := r.client.LoadContainer(ctx, c.ID)
		if err != nil {
			return nil, nil, err
		}
		spec, err := container.Spec(ctx)
		if err != nil {
			return nil, nil, err
		}
		proc = spec.Process
	}
	pspec := *proc
	pspec.Args, pspec.Terminal = cmd, tty
	opts := []cio.Opt{streams, cio.WithFIFODir(filepath.Join(r.containerDir(c.ID), "exec"))}
	if tty {
		opts = append(opts, cio.WithTerminal)
	}
	process, err := task.Exec(ctx, newID()[:32], &pspec, cio.NewCreator(opts...))
	if err != nil {
		return nil, nil, fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	return c, process, nil
}

// execution is an exec process that has been started.
type execution struct {
	container *Container
	process   containerd.Process
	exitCh    <-chan containerd.ExitStatus
	exited    bool // its exit was received
}

// startExec starts cmd in running container id (see newExec) with streams.
func (r *Runtime) startExec(ctx context.Context, id string, cmd []string, tty bool, streams cio.Opt) (*execution, error) {
	c, process, err := r.newExec(ctx, id, cmd, tty, streams)
	if err != nil {
		return nil, err
	}
	e := &execution{container: c, process: process}
	if e.exitCh, err = process.Wait(context.WithoutCancel(ctx)); err == nil {
		err = process.Start(ctx)
	}
	if err != nil {
		e.delete(ctx)
		return nil, fmt.Errorf("exec %q in container %s: %w", strings.Join(cmd, " "), c.ID, err)
	}
	return e, nil
}

// delete deletes the exec process once berth is done with it: one that exited as it is, any
// other killed first (WithProcessKill costs two more round trips to the shim, which a finished
// probe does not need). The shim waits up to 10 s for a process's output to end before it
// deletes it; the bound is beyond that.
func (e *execution) delete(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	var opts []containerd.ProcessDeleteOpts
	if !e.exited {
		opts = append(opts, containerd.WithProcessKill)
	}
	e.process.Delete(ctx, opts...)
}

// killExec kills a timed-out exec process and waits (briefly) until it is gone, so that nothing
// of it is left in the container.
func (r *Runtime) killExec(p containerd.Process, exitCh <-chan containerd.ExitStatus) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		r.log.Warn("cannot kill a timed-out exec", "exec", p.ID(), "error", err)
	}
	select {
	case <-exitCh:
	case <-ctx.Done():
	}
}

// cappedBuffer keeps the first limit bytes written to it and drops the rest, marking the cut.
// It never holds more than limit bytes of memory (a bytes.Buffer doubles past what it needs),
// and Bytes hands over what it holds without a copy: an ExecSync answer costs its size once.
type cappedBuffer struct {
	mu        sync.Mutex
	buf       []byte
	limit     int
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(p), b.limit-len(b.buf))
	if n < len(p) {
		b.truncated = true // keep draining: the process must not block on a full pipe
	}
	if n <= 0 {
		return len(p), nil
	}
	if need := len(b.buf) + n; need > cap(b.buf) {
		grown := make([]byte, len(b.buf), min(max(2*cap(b.buf), need, 4<<10), b.limit))
		copy(grown, b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, p[:n]...)
	return len(p), nil
}

// Bytes returns what was kept, with TruncatedMarker when output was dropped. The buffer must
// not be written to afterwards.
func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.truncated {
		return append(b.buf, TruncatedMarker...)
	}
	return b.buf
}

// fitBudget cuts two outputs so that together they take at most budget bytes: the smaller keeps
// up to half, the larger the rest; a cut output ends with TruncatedMarker.
func fitBudget(a, b []byte, budget int) ([]byte, []byte) {
	if len(a)+len(b) <= budget {
		return a, b
	}
	if len(a) > len(b) {
		b, a := fitBudget(b, a, budget)
		return a, b
	}
	a = cut(a, min(len(a), budget/2))
	return a, cut(b, budget-len(a))
}

// cut shortens out to n bytes, the last of them TruncatedMarker; out already n or shorter is kept.
func cut(out []byte, n int) []byte {
	if len(out) <= n {
		return out
	}
	keep := max(n-len(TruncatedMarker), 0)
	return append(out[:keep:keep], TruncatedMarker...) // a full slice: append copies
}
