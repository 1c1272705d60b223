// Package daemon starts a real berthd in temporary directories, for the integration tests, the
// conformance runner and the benchmarks, and cleans up everything it leaves behind.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Daemon is a berthd started by Start.
type Daemon struct {
	// Dir is the temporary directory holding Root, State and the socket.
	Dir         string
	Root, State string
	Socket      string
	// Args are the command-line arguments berthd was started with.
	Args []string
	// Env is added to berthd's environment at the next Run (BERTH_TEST_HOLD, say).
	Env []string
	// extra are the arguments given to the last Run.
	extra []string

	Runtime runtimeapi.RuntimeServiceClient
	Image   runtimeapi.ImageServiceClient

	conn *grpc.ClientConn
	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan struct{}
}

// Binary is the berthd executable: $BERTH_BIN/berthd, else bin/berthd above the working directory.
func Binary() (string, error) {
	if d := os.Getenv("BERTH_BIN"); d != "" {
		return filepath.Join(d, "berthd"), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for ; dir != "/"; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "bin", "berthd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no berthd binary: run `make build` or set BERTH_BIN")
}

// NewDirs makes a fresh temporary directory for a daemon (short, for unix socket paths).
func NewDirs() (*Daemon, error) {
	dir, err := os.MkdirTemp("", "berth-")
	if err != nil {
		return nil, err
	}
	// Traversable, as /run is: the root of a user-namespaced pod is not the node's root, and
	// runc, as that user, reaches the container's bundle below here.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	return &Daemon{
		Dir:    dir,
		Root:   filepath.Join(dir, "root"),
		State:  filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "berth.sock"),
	}, nil
}

// Start starts berthd with its directories under a new temporary directory, extra arguments
// appended, and waits until it answers Version.
func Start(extra ...string) (*Daemon, error) {
	d, err := NewDirs()
	if err != nil {
		return nil, err
	}
	if err := d.Run(extra...); err != nil {
		d.Cleanup()
		return nil, err
	}
	return d, nil
}

// Run starts (or restarts) berthd on d's directories and waits until it answers Version. A
// restart with no arguments keeps the arguments of the last start.
func (d *Daemon) Run(extra ...string) error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	if len(extra) == 0 {
		extra = d.extra
	}
	d.extra = extra
	d.Args = append([]string{
		"--config", filepath.Join(d.Dir, "config.toml"), // absent unless a test writes it
		"--root", d.Root, "--state", d.State, "--listen", d.Socket,
		"--log-level", "debug",
	}, extra...)
	if _, err := os.Stat(filepath.Join(d.Dir, "config.toml")); err != nil {
		if err := os.WriteFile(filepath.Join(d.Dir, "config.toml"), nil, 0o600); err != nil {
			return err
		}
	}
	d.logs = &SyncBuffer{}
	logFile, err := os.OpenFile(filepath.Join(d.Dir, "berthd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, d.Args...)
	if len(d.Env) > 0 {
		cmd.Env = append(os.Environ(), d.Env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = &teeWriter{logFile, d.logs}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(d.done)
	}()
	if d.conn == nil {
		conn, err := Dial(d.Endpoint())
		if err != nil {
			return err
		}
		d.conn = conn
		d.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
		d.Image = runtimeapi.NewImageServiceClient(conn)
	}
	return d.WaitReady(60 * time.Second)
}

// Dial returns a gRPC client connection to a CRI endpoint (unix:///path), with the kubelet's
// message size limit and a short reconnect back-off: the socket appears moments after start, and
// tests restart berthd under the same client.
func Dial(endpoint string) (*grpc.ClientConn, error) {
	bc := backoff.DefaultConfig
	bc.BaseDelay, bc.MaxDelay = 10*time.Millisecond, 200*time.Millisecond
	return grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The kubelet's CRI client limit (k8s.io/cri-client): what berthd must fit in.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: time.Second}))
}

// WaitReady waits until berthd answers Version.
func (d *Daemon) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("berthd exited before answering: %v\n%s", d.cmd.ProcessState, d.Logs())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("berthd did not answer within %s: %v\n%s", timeout, err, d.Logs())
		}
		time.Sleep(5 * time.Millisecond) // as the bench polls containerd: a fair cold-start figure
	}
}

// Endpoint is the daemon's CRI endpoint as crictl and critest take it.
func (d *Daemon) Endpoint() string { return "unix://" + d.Socket }

// Pid is berthd's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Logs returns what berthd has logged since its last start.
func (d *Daemon) Logs() string { return d.logs.String() }

// Exited is closed when the berthd process has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.done }

// ContainerdPid is the managed containerd's pid from its pid file, or 0.
func (d *Daemon) ContainerdPid() int {
	b, err := os.ReadFile(filepath.Join(d.State, "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Stop sends sig to berthd and waits up to 10 s for it to exit.
func (d *Daemon) Stop(sig syscall.Signal) error {
	if d.cmd == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("berthd did not exit within 10s of %v", sig)
	}
}

// Cleanup kills berthd, its managed containerd and every shim under its state, unmounts what
// they left mounted under the daemon's directory and removes it.
func (d *Daemon) Cleanup() {
	d.removePods()
	killPodProcesses(filepath.Join(d.State, "pods"))
	if d.cmd != nil {
		_ = d.Stop(syscall.SIGKILL)
	}
	if d.conn != nil {
		d.conn.Close()
	}
	killUnder(d.Dir)
	unmountUnder(d.Dir)
	os.RemoveAll(d.Dir)
}

// removePods removes, through the CRI, every pod a test (or critest, which leaves the pods of
// failed specs) left behind, so that their processes and network go the way berth removes them.
func (d *Daemon) removePods() {
	if d.Runtime == nil || d.done == nil {
		return
	}
	select {
	case <-d.done:
		return // berthd is not running
	default:
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	list, err := d.Runtime.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
	lcancel()
	if err != nil {
		return // berthd cannot say (its containerd is gone, say)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, p := range list.Items {
		_, _ = d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
	}
}

// killPodProcesses kills the processes still in a pod network namespace pinned under podsDir:
// what a berthd that could not clean up (killed in a test) leaves running.
func killPodProcesses(podsDir string) {
	pins, _ := filepath.Glob(filepath.Join(podsDir, "*", "ns", "net"))
	if len(pins) == 0 {
		return
	}
	inodes := map[uint64]bool{}
	for _, p := range pins {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			inodes[st.Ino] = true
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) == nil && inodes[st.Ino] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// killUnder kills every process whose command line names a path under dir (the managed
// containerd and its shims do), and waits for them to go.
func killUnder(dir string) {
	for range 50 {
		pids := processesMentioning(dir)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func processesMentioning(s string) []int {
	return Processes(func(cmdline string) bool { return strings.Contains(cmdline, s) })
}

// Processes lists the pids (this process's aside) whose command line, its arguments joined by
// spaces, matches.
func Processes(match func(cmdline string) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && len(b) > 0 && match(strings.ReplaceAll(string(b), "\x00", " ")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder lazily unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = unix.Unmount(points[i], unix.MNT_DETACH)
	}
}

// SyncBuffer is a bytes.Buffer safe for a writer and a reader at once (a process's output
// read while it runs).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type teeWriter struct{ a, b io.Writer }

func (t *teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p)
	return t.b.Write(p)
}

// EnvOr is the environment variable name, or def when it is unset or empty: the test programs'
// settings (VM_DIR, KIND_CLUSTER, CONFORMANCE_FOCUS, ...).
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
