package runtime

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	containerdversion "github.com/containerd/containerd/v2/version"
	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ShimConfig says how berth's containerd runs runc shims, so that berth can start a pod's shim
// itself while the pod's network is being set up, and can make sure the shim and its socket are
// gone when the pod is.
//
// The containers of a pod share its shim (DESIGN.md, decision 3). With its own shim (the
// default with a managed containerd), a pod is also a containerd sandbox: berth runs the shim's
// "start" command at the end of RunPodSandbox (in the background unless the pod needs an infra
// process), and creates every task of the pod in that shim through containerd's task API
// endpoint. containerd then neither executes the shim's start command for each task (which
// finds the shim of the pod's group already listening) nor asks the shim to shut down after
// each task. Otherwise containerd starts the
// pod's shim with its first task, grouped by the pod's id (the group annotation).
type ShimConfig struct {
	// Binary is the runc shim executable (containerd-shim-runc-v2). Empty: berth never starts
	// shims itself (an external containerd, whose shim and configuration berth does not know).
	Binary string
	// ContainerdBinary is the containerd executable, told to the shim as containerd does.
	ContainerdBinary string
	// Address and TTRPCAddress are containerd's, exactly as in its configuration.
	Address, TTRPCAddress string
	// BundleDir is where containerd makes its tasks' bundles (one directory per namespace).
	BundleDir string
}

// shimSocketDir is where runc shims make their sockets, whatever containerd's state directory.
const shimSocketDir = "/run/containerd/s"

// shimSocket is the socket of the shim of group: as the runc shim computes it (pkg/shim's
// SocketAddress), the hash of containerd's address, the namespace and the group.
// prestartShim checks it against the address the shim answers (TestPodShimStartsWithThePod).
// With debug set it is the shim's debug socket, which a containerd logging at debug level asks for.
func shimSocket(containerdAddress, group string, debug bool) string {
	path := filepath.Join(containerdAddress, Namespace, group)
	if debug {
		path = filepath.Join(path, "debug")
	}
	return filepath.Join(shimSocketDir, fmt.Sprintf("%x", sha256.Sum256([]byte(path))))
}

// prestartShim starts the shim of pod sb, grouped by its id, and returns once the shim listens.
// The shim runs with the pod's id, so it removes its socket when it exits.
func (r *Runtime) prestartShim(ctx context.Context, sb *Sandbox) error {
	dir := filepath.Join(sb.Dir, "shim")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The shim logs to the FIFO "log" of its directory and waits for a reader before it serves.
	if err := r.openShimLog(sb, true); err != nil {
		return err
	}

	address, err := r.shim.Start(ctx, sb.ID, dir)
	if err != nil {
		return fmt.Errorf("start the shim of pod %s: %w", sb.ID, err)
	}
	if want := r.podShimSocket(sb); strings.TrimPrefix(address, "unix://") != want {
		// Not where berth will look for it at the pod's end: stop it now rather than leak it.
		r.shutdownShim(ctx, strings.TrimPrefix(address, "unix://"), true)
		return fmt.Errorf("the shim of pod %s listens on %s, not %s: shim socket naming changed", sb.ID, address, want)
	}
	return nil
}

// prestartShimOrWarn starts the shim of pod sb ahead of its first task. A shim that does not
// start is not fatal to the pod: its first task tries again (ensureShim) and fails with the
// reason if it still cannot.
func (r *Runtime) prestartShimOrWarn(ctx context.Context, sb *Sandbox) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	if err := r.prestartShim(ctx, sb); err != nil {
		r.log.Warn("pod shim not started ahead of its containers", "sandbox", sb.ID, "error", err)
	}
}

// Start runs the shim's start command for the group id, as containerd does, with dir as its
// working directory: Start writes the bundle's config.json there (the shim reads the group
// annotation from it, nothing else), and dir holds the FIFO "log", which the caller must be
// reading. It returns the address the shim listens on once it serves. make bench times exactly
// this as the floor of a pod's shim.
func (c ShimConfig) Start(ctx context.Context, id, dir string) (string, error) {
	spec, _ := json.Marshal(map[string]any{"annotations": map[string]string{groupAnnotation: id}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), spec, 0o600); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, c.Binary,
		"-namespace", Namespace, "-address", c.Address, "-publish-binary", c.ContainerdBinary,
		"-id", id, "start")
	cmd.Dir = dir
	// The environment containerd gives its shims; runc is found beside containerd, as it finds it.
	path := filepath.Dir(c.ContainerdBinary) + ":" + filepath.Dir(c.Binary) + ":" + os.Getenv("PATH")
	cmd.Env = append(os.Environ(), "PATH="+path, "GOMAXPROCS=2", "MAX_SHIM_VERSION=2",
		"TTRPC_ADDRESS="+c.TTRPCAddress, "GRPC_ADDRESS="+c.Address, "NAMESPACE="+Namespace)
	// A shim of containerd 2.3 or later is told what it serves through the bootstrap protocol on
	// its standard input, as containerd does (the flags above are for older ones).
	params, err := proto.Marshal(&bootapi.BootstrapParams{
		InstanceID: id, Namespace: Namespace, LogLevel: bootapi.LogLevel_LOG_LEVEL_INFO,
		ContainerdVersion: containerdversion.Version, ContainerdBinary: c.ContainerdBinary,
		ContainerdGrpcAddress: c.Address, ContainerdTtrpcAddress: c.TTRPCAddress,
		SocketDir: ptr(shimSocketDir),
	})
	if err != nil {
		return "", err
	}
	cmd.Stdin = bytes.NewReader(params)
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(exitErr.Stderr)))
		}
		return "", err
	}
	return shimStartAddress(out)
}

// shimStartAddress reads the address a shim's start command answers: a bootstrap result
// (protobuf) from a shim of containerd 2.3 or later, JSON or the bare address from older ones.
func shimStartAddress(out []byte) (string, error) {
	var res bootapi.BootstrapResult
	if err := proto.Unmarshal(out, &res); err == nil && res.GetAddress() != "" {
		return res.GetAddress(), nil
	}
	var legacy struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &legacy); err == nil && legacy.Address != "" {
		return legacy.Address, nil
	}
	if a := strings.TrimSpace(string(out)); strings.HasPrefix(a, "unix://") {
		return a, nil
	}
	return "", fmt.Errorf("unexpected answer %q", out)
}

func ptr[T any](v T) *T { return &v }

// openShimLog opens the read end of the log FIFO of the pod's shim (creating it when create is
// set) and forwards what the shim writes into berth's log. The sandbox's lock is held or the
// sandbox is not shared yet.
func (r *Runtime) openShimLog(sb *Sandbox, create bool) error {
	flags := unix.O_RDONLY | unix.O_NONBLOCK
	if create {
		flags |= unix.O_CREAT
	}
	f, err := fifo.OpenFifo(context.Background(), filepath.Join(sb.Dir, "shim", "log"), flags, 0o700)
	if err != nil {
		return fmt.Errorf("shim log of pod %s: %w", sb.ID, err)
	}
	sb.shimLog = f
	go func() {
		defer f.Close()
		forwardShimLog(r.log.With("sandbox", sb.ID), f)
	}()
	return nil
}

// readShimLog reopens, after a restart, the log of a shim berth started for pod sb: a shim that
// has not opened its log yet serves nothing until it has a reader.
func (r *Runtime) readShimLog(sb *Sandbox) {
	if _, err := os.Stat(filepath.Join(sb.Dir, "shim", "log")); err != nil {
		return
	}
	if err := r.openShimLog(sb, false); err != nil {
		r.log.Warn("cannot read the pod shim's log", "sandbox", sb.ID, "error", err)
	}
}

// forwardShimLog copies the shim's log lines (logrus text) into berth's log until the shim
// exits: errors, warnings and panics as warnings, the rest at debug level. A message repeated line after
// line (a shim on cgroup v1 repeats "cgroups: epoll wait" while it shuts down) is logged once,
// with the number of repeats.
func forwardShimLog(log *slog.Logger, r io.Reader) {
	var last string
	repeats := 0
	emit := func(line string, n int) {
		level := slog.LevelDebug
		if strings.HasPrefix(line, "panic:") || strings.Contains(line, "level=error") || strings.Contains(line, "level=warning") ||
			strings.Contains(line, "level=fatal") || strings.Contains(line, "level=panic") {
			level = slog.LevelWarn
		}
		if n > 0 {
			log.Log(context.Background(), level, "shim log", "line", line, "repeated", n)
		} else {
			log.Log(context.Background(), level, "shim log", "line", line)
		}
	}
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := s.Text()
		msg := withoutTime(line)
		if msg == last {
			repeats++
			continue
		}
		if repeats > 0 {
			emit(last, repeats)
		}
		last, repeats = msg, 0
		emit(line, 0)
	}
	if repeats > 0 {
		emit(last, repeats)
	}
}

// withoutTime is a logrus text line without its time= field.
func withoutTime(line string) string {
	if rest, ok := strings.CutPrefix(line, "time=\""); ok {
		if _, after, ok := strings.Cut(rest, "\" "); ok {
			return after
		}
	}
	return line
}

// releaseShim makes sure the shim of pod sb is gone once the pod's containers are: a shim started
// ahead of a first container that never came is told to exit, and a socket its shim left behind
// (a shim containerd started runs under its first container's id, and only removes that
// container's socket) is removed.
// With wait unset the shim is only told to exit: its socket goes at the pod's removal.
func (r *Runtime) releaseShim(ctx context.Context, sb *Sandbox, wait bool) {
	if r.shim.Address == "" {
		return
	}
	// A shim still starting (RunPodSandbox starts it in the background) is waited for, or it
	// would be left running.
	sb.shimMu.Lock()
	defer sb.shimMu.Unlock()
	r.shutdownShim(ctx, r.podShimSocket(sb), wait)
	if wait {
		removeDeadSocket(r.log, shimSocket(r.shim.Address, sb.ID, true))
	}
}

// removeDeadSocket removes socket if nothing listens on it.
func removeDeadSocket(log *slog.Logger, socket string) {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err == nil {
		conn.Close()
		return
	}
	removeRefused(log, socket, err)
}

// removeRefused removes socket when dialErr, the error of dialling it, says nothing listens there.
func removeRefused(log *slog.Logger, socket string, dialErr error) {
	if !errors.Is(dialErr, syscall.ECONNREFUSED) {
		return
	}
	if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
		log.Warn("cannot remove a dead shim's socket", "socket", socket, "error", err)
	}
}

// closeShimLog stops reading the log of the pod's shim; called once the pod is removed.
func (sb *Sandbox) closeShimLog() {
	sb.shimMu.Lock()
	defer sb.shimMu.Unlock()
	sb.closeShimLogLocked()
}

// closeShimLogLocked is closeShimLog with shimMu held.
func (sb *Sandbox) closeShimLogLocked() {
	if sb.shimLog != nil {
		sb.shimLog.Close()
		sb.shimLog = nil
	}
}

// shimExitTimeout bounds the wait for a shim told to exit (or exiting after its last task).
const shimExitTimeout = 2 * time.Second

// shutdownShim asks the shim listening on socket to exit (a shim that still runs a container
// declines) and, with wait set, waits a moment for it to stop listening. The socket is removed
// once nothing listens on it: a shim removes only the socket named after its own id, and
// containerd starts a pod's shim under its first container's.
func (r *Runtime) shutdownShim(ctx context.Context, socket string, wait bool) {
	ShutdownShim(ctx, r.log, socket, wait)
}

// ShutdownShim asks the shim listening on socket to exit and, with wait, waits until it has
// (a socket that refuses connections is removed). make bench stops its floor's shims with it.
func ShutdownShim(ctx context.Context, log *slog.Logger, socket string, wait bool) {
	dial := func() (net.Conn, error) { return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", socket) }
	conn, err := dial()
	if err != nil {
		removeRefused(log, socket, err)
		return
	}
	client := ttrpc.NewClient(conn)
	sctx, cancel := context.WithTimeout(ctx, shimExitTimeout)
	_, err = taskapi.NewTTRPCTaskClient(client).Shutdown(sctx, &taskapi.ShutdownRequest{})
	cancel()
	client.Close()
	if err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		log.Debug("shim shutdown", "socket", socket, "error", err)
	}
	if !wait {
		return
	}
	for deadline := time.Now().Add(shimExitTimeout); ; time.Sleep(20 * time.Millisecond) {
		conn, err := dial()
		if err != nil {
			removeRefused(log, socket, err)
			return
		}
		conn.Close()
		if time.Now().After(deadline) || ctx.Err() != nil {
			log.Debug("shim still listening after being told to exit", "socket", socket)
			return
		}
	}
}

// ShimTaskAPIVersion is the version of the task API of the runc shim (its bootstrap "version"):
// 3 and up is a shim that serves the tasks of a sandbox and is not shut down with each of them.
const ShimTaskAPIVersion = 3

// newTask creates the task of container, of pod sb. The tasks of a pod with its own shim are
// created in that shim, through containerd's task API endpoint, rather than by containerd
// executing the shim's start command for each of them; a shim that is gone (killed, or not
// started at RunPodSandbox) is started again first.
func (r *Runtime) newTask(ctx context.Context, sb *Sandbox, container containerd.Container, ioCreate cio.Creator, opts ...containerd.NewTaskOpts) (containerd.Task, error) {
	if sb.OwnShim {
		if err := r.ensureShim(ctx, sb); err != nil {
			return nil, err
		}
		opts = append(opts, containerd.WithTaskAPIEndpoint("ttrpc+unix://"+r.podShimSocket(sb), ShimTaskAPIVersion))
	}
	return container.NewTask(ctx, ioCreate, opts...)
}

// podShimSocket is the socket of the shim of pod sb.
func (r *Runtime) podShimSocket(sb *Sandbox) string { return shimSocket(r.shim.Address, sb.ID, false) }

// ensureShim starts the pod's own shim unless it is listening.
func (r *Runtime) ensureShim(ctx context.Context, sb *Sandbox) error {
	sb.shimMu.Lock()
	defer sb.shimMu.Unlock()
	if r.shimListening(sb) {
		return nil
	}
	if r.shim.Binary == "" {
		return fmt.Errorf("the shim of pod %s is gone and this berthd cannot start one (no managed containerd): %w", sb.ID, errdefs.ErrUnavailable)
	}
	r.log.Info("starting the pod's shim again", "sandbox", sb.ID)
	sb.closeShimLogLocked()
	return r.prestartShim(ctx, sb)
}

// shimLeftDuringCreate reports whether err says the own shim of pod podID went away while a task
// was being created in it, after waiting (a few seconds at most) until it is gone. containerd
// asks a shim to shut down whenever a task of it is deleted, and the runc shim exits if it then
// has no task: a pod whose last container exits while the next one is created loses its shim
// under the create. The create is then worth a second try, which starts the shim again.
func (r *Runtime) shimLeftDuringCreate(ctx context.Context, podID string, err error) bool {
	sb, serr := r.sandboxes.get(podID)
	if serr != nil || !sb.OwnShim || !shimClosed(err) {
		return false
	}
	r.log.Info("the pod's shim shut down during a task create; creating it again", "sandbox", podID, "error", err)
	for deadline := time.Now().Add(5 * time.Second); r.shimListening(sb) && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
	}
	return ctx.Err() == nil
}

// shimListening reports whether the pod's own shim accepts connections.
func (r *Runtime) shimListening(sb *Sandbox) bool {
	conn, err := net.DialTimeout("unix", r.podShimSocket(sb), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// shimGone reports whether the own shim of pod sb died, taking its tasks with it: waitErr, the
// error of waiting on one of them, says containerd's connection to it is closed, or nothing
// listens on its socket. containerd does not clean up after a shim it did not start, and
// reports nothing for its tasks.
func (r *Runtime) shimGone(sb *Sandbox, waitErr error) bool {
	return shimClosed(waitErr) || !r.shimListening(sb)
}

// shimClosed reports whether err says a shim's connection is closed ("ttrpc: closed"), as
// containerd passes it on: wrapped, or only as text through its gRPC API.
func shimClosed(err error) bool {
	return err != nil && (errors.Is(err, ttrpc.ErrClosed) || strings.Contains(err.Error(), ttrpc.ErrClosed.Error()))
}

// reapOrphanedTask cleans up after container c, whose shim died under it: runc kills what is
// left of the container and removes its state and cgroup (what containerd has the shim's delete
// command do for the shims it starts), then containerd drops the task and unmounts its rootfs.
func (r *Runtime) reapOrphanedTask(c *Container, task containerd.Task) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	runc := filepath.Join(filepath.Dir(r.shim.ContainerdBinary), "runc")
	if _, err := os.Stat(runc); err != nil {
		runc = "runc"
	}
	// The runc shim's state root: its default, under the namespace.
	root := filepath.Join("/run/containerd/runc", Namespace)
	if out, err := exec.CommandContext(ctx, runc, "--root", root, "delete", "--force", c.ID).CombinedOutput(); err != nil && !strings.Contains(string(out), "does not exist") {
		r.log.Warn("cannot delete an orphaned container with runc", "container", c.ID, "error", err, "output", strings.TrimSpace(string(out)))
	}
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		// containerd answers the shim's closed connection, having dropped the task all the same.
		r.log.Debug("deleted the task of a dead shim", "container", c.ID, "error", err)
	}
	// containerd may have dropped the task without removing its bundle, whose rootfs is
	// mounted; it would only do so at its next start.
	if r.shim.BundleDir == "" {
		return
	}
	bundle := filepath.Join(r.shim.BundleDir, Namespace, c.ID)
	work, _ := os.Readlink(filepath.Join(bundle, "work"))
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		r.log.Warn("cannot unmount an orphaned container's rootfs", "container", c.ID, "error", err)
		return
	}
	for _, dir := range []string{bundle, work} {
		if dir == "" {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			r.log.Warn("cannot remove an orphaned container's bundle", "container", c.ID, "dir", dir, "error", err)
		}
	}
}
