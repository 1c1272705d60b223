package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-runtime/berth/runtime/namespace"
)

// Exec runs cmd in a running container with the client's streams (stdin, stdout, stderr or a
// terminal that the client resizes) until it exits; a non-zero exit is returned as an
// exec.ExitError, which the streaming server carries back to the client as the exit code. A
// client that goes away (ctx done) kills the process.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if len(cmd) == 0 {
		return fmt.Errorf("cmd: empty: %w", errdefs.ErrInvalidArgument)
	}
	// The runc shim wants every stream of a process without a terminal: the ones the client
	// did not ask for are discarded.
	var stdout, stderr io.Writer = io.Discard, io.Discard
	if out != nil {
		stdout = out
	}
	if errOut != nil {
		stderr = errOut
	}
	if tty {
		stderr = nil
	}
	// The shim holds the stdin pipe open itself: the end of the client's input has to be told
	// to it (CloseIO), or the command never reads end-of-file.
	var stdinEnded chan struct{}
	if in != nil {
		stdinEnded = make(chan struct{})
		in = &eofNotifier{r: in, eof: stdinEnded}
	}
	e, err := r.startExec(ctx, id, cmd, tty, cio.WithStreams(in, stdout, stderr))
	if err != nil {
		return err
	}
	defer e.delete(ctx)
	c, process, exitCh := e.container, e.process, e.exitCh
	stopResize := forwardResize(resize, process.Resize)
	defer stopResize()
	if stdinEnded != nil {
		go func() {
			select {
			case <-stdinEnded:
				if err := process.CloseIO(context.WithoutCancel(ctx), containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
					r.log.Debug("cannot close an exec's stdin", "container", c.ID, "error", err)
				}
			case <-ctx.Done():
			}
		}()
	}
	select {
	case st := <-exitCh:
		e.exited = true
		code, _, err := st.Result()
		if err != nil {
			return err
		}
		process.IO().Wait() // the output is complete once the pipes are drained
		if code != 0 {
			return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with %d", strings.Join(cmd, " "), code), Code: int(code)}
		}
		return nil
	case <-ctx.Done():
		r.killExec(process, exitCh)
		return ctx.Err()
	}
}

// Attach connects the client's streams to a running container's: its output from now on (the
// log file keeps receiving it too) and, when the container has stdin open, the client's input.
// Several clients can attach at once. Attach returns when the client stops taking output, the
// container exits or ctx is done, and when the client's input ends, except for a container
// with stdin_once and no tty: the end of the first client's input closes its stdin, and its
// answer still comes back until its output ends (as containerd's CRI and docker do).
// Detaching never stops the container.
func (r *Runtime) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	sio, exited, running := c.io, c.exited, c.State.State == ContainerRunning
	c.mu.Unlock()
	if !running || sio == nil {
		return fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	if in != nil && !c.Config.GetStdin() {
		return fmt.Errorf("container %s was not created with stdin: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	if tty != c.Config.GetTty() {
		return fmt.Errorf("attach with tty=%v to container %s created with tty=%v: %w", tty, c.ID, c.Config.GetTty(), errdefs.ErrInvalidArgument)
	}

	ended := make(chan struct{}, 3)
	finish := func() { ended <- struct{}{} }
	for _, s := range []struct {
		w   io.Writer
		src *fanout
	}{{writerOrNil(out), &sio.stdout}, {writerOrNil(errOut), &sio.stderr}} {
		if s.w == nil {
			continue
		}
		done, detach := s.src.attach(s.w)
		defer detach()
		go func() {
			select {
			case <-done:
				finish()
			case <-ctx.Done():
			}
		}()
	}
	if in != nil {
		go func() {
			_, err := io.Copy(writerFunc(sio.writeStdin), in)
			if err == nil && c.Config.GetStdinOnce() {
				sio.closeStdin()
				if task, err := r.liveTask(context.WithoutCancel(ctx), c); err == nil {
					task.CloseIO(context.WithoutCancel(ctx), containerd.WithStdinCloser)
				}
				if !tty && (writerOrNil(out) != nil || writerOrNil(errOut) != nil) {
					return // the output tells the end
				}
			}
			finish()
		}()
	}
	if tty {
		if task, err := r.liveTask(ctx, c); err == nil {
			defer forwardResize(resize, task.Resize)()
		}
	}
	select {
	case <-ended:
	case <-exited:
	case <-ctx.Done():
	}
	return nil
}

// PortForward copies between stream and a TCP connection to port on the pod's loopback,
// dialled inside the pod's network namespace (on the node for a host-network pod).
func (r *Runtime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port: %d is not a TCP port: %w", port, errdefs.ErrInvalidArgument)
	}
	sb, err := r.loadedSandbox(ctx, podID)
	if err != nil {
		return err
	}
	v := sb.view()
	if v.State != SandboxReady {
		return fmt.Errorf("pod sandbox %s is not ready: %w", podID, errdefs.ErrFailedPrecondition)
	}
	// The pod's IPv4 loopback, then its IPv6 one: a server may listen on either alone (as
	// containerd tries localhost both ways).
	var conn net.Conn
	dial := func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		var errs []error
		for _, a := range []struct{ network, host string }{{"tcp4", "127.0.0.1"}, {"tcp6", "::1"}} {
			c, err := d.DialContext(ctx, a.network, net.JoinHostPort(a.host, fmt.Sprint(port)))
			if err == nil {
				conn = c
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if v.NetNS != "" {
		err = namespace.Do(namespace.Net, v.NetNS, dial)
	} else {
		err = dial()
	}
	if err != nil {
		return fmt.Errorf("port-forward to port %d in pod %s: %w", port, podID, err)
	}
	defer conn.Close()

	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite() // the client is done sending: let the server see end-of-file
		}
		errc <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		errc <- err
	}()
	select {
	case err = <-errc: // the pod's side closed, or the client's did
	case <-ctx.Done():
		return ctx.Err()
	}
	if err == nil {
		// Let the other direction finish what it has: the server's answer after the client's
		// end-of-file, typically.
		select {
		case err = <-errc:
		case <-ctx.Done():
		}
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}

// forwardResize applies the client's terminal sizes until resize closes or stop is called.
func forwardResize(resize <-chan remotecommand.TerminalSize, apply func(context.Context, uint32, uint32) error) (stop func()) {
	if resize == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			select {
			case size, ok := <-resize:
				if !ok {
					return
				}
				if size.Width > 0 && size.Height > 0 {
					apply(ctx, uint32(size.Width), uint32(size.Height))
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return cancel
}

// writerOrNil turns a nil WriteCloser into a nil Writer (not a non-nil interface holding nil).
func writerOrNil(w io.WriteCloser) io.Writer {
	if w == nil {
		return nil
	}
	return w
}

// eofNotifier closes eof when its reader reaches the end (or fails).
type eofNotifier struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofNotifier) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
