package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// GCPercent is the Go garbage collector's target (GOGC) of berthd and of its managed containerd
// unless GOGC is set in berthd's environment. Both are long-lived node daemons with small heaps
// and low allocation rates: collecting at +50% instead of Go's +100% costs little CPU and saves a
// few MiB on every node (containerd's runc shims collect at +40% for the same reason).
const GCPercent = 50

// Managed is a containerd that berthd starts and supervises. It runs in its own process session,
// so it outlives berthd: stopping berthd leaves it (and every container) running, and the next
// berthd with the same state directory adopts it instead of starting a second one. When it dies it
// is restarted with back-off.
type Managed struct {
	// Binary is the containerd executable. Its directory is put first on containerd's PATH, so
	// that the shims and runc installed beside it are the ones used.
	Binary string
	// RootDir and StateDir are berth's root and state directories; the engine uses the
	// "containerd" directory in each.
	RootDir, StateDir string
	// LogLevel is containerd's log level.
	LogLevel string
	// Logger receives the engine's events.
	Logger *slog.Logger

	pid      atomic.Int64
	restarts atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex // serializes start and Close
}

// Start makes sure a containerd is running for this state directory, adopting one left by an
// earlier berthd or starting a new one, and supervises it until Close. It waits up to timeout for
// containerd to answer; a containerd that does not answer in time is reported as an error, but
// supervision still goes on (a caller may serve and report the engine not ready).
func (m *Managed) Start(timeout time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done != nil {
		return errors.New("engine: already started")
	}
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	if m.LogLevel == "" {
		m.LogLevel = "info"
	}
	if err := m.writeConfig(); err != nil {
		return fmt.Errorf("write managed containerd config: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})

	exited, err := m.adopt(ctx)
	if err == nil && exited == nil {
		exited, err = m.spawn()
	}
	go m.supervise(ctx, exited)
	if err != nil {
		return err
	}
	return m.waitReady(timeout)
}

// Close stops supervising. containerd keeps running.
func (m *Managed) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
	m.cancel = nil
}

// Address is the socket of the managed containerd's gRPC API.
func (m *Managed) Address() string { return filepath.Join(m.state(), "containerd.sock") }

// TTRPCAddress is the socket the managed containerd serves ttrpc on (shims publish events there).
func (m *Managed) TTRPCAddress() string { return m.Address() + ".ttrpc" }

// ShimBinary is the runc shim the managed containerd runs (see OnPath).
func (m *Managed) ShimBinary() string { return m.OnPath("containerd-shim-runc-v2") }

// OnPath is the executable name that the managed containerd, and the shims and runc it runs,
// find: the one beside containerd's executable, which comes first on their PATH, else the first
// on berthd's PATH; "" when there is none.
func (m *Managed) OnPath(name string) string {
	if p := filepath.Join(filepath.Dir(m.Binary), name); isExecutable(p) {
		return p
	}
	p, _ := exec.LookPath(name)
	return p
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Pid is the process id of the running containerd, or 0 while none runs.
func (m *Managed) Pid() int { return int(m.pid.Load()) }

// TaskBundleDir is the directory of containerd's task bundles (its runtime v2 state, one
// directory per namespace).
func (m *Managed) TaskBundleDir() string {
	return filepath.Join(m.state(), "io.containerd.runtime.v2.task")
}

// Restarts counts how often containerd was restarted after it died.
func (m *Managed) Restarts() int { return int(m.restarts.Load()) }

func (m *Managed) root() string       { return filepath.Join(m.RootDir, "containerd") }
func (m *Managed) state() string      { return filepath.Join(m.StateDir, "containerd") }
func (m *Managed) configPath() string { return filepath.Join(m.state(), "config.toml") }
func (m *Managed) pidPath() string    { return filepath.Join(m.state(), "containerd.pid") }
func (m *Managed) logPath() string    { return filepath.Join(m.state(), "containerd.log") }

// adopt finds a containerd left running by an earlier berthd for this state directory: the pid
// file names a live process started with this config file. It returns a channel closed when that
// process exits, or nil when there is none to adopt.
func (m *Managed) adopt(ctx context.Context) (<-chan struct{}, error) {
	data, err := os.ReadFile(m.pidPath())
	if err != nil {
		return nil, nil
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 || !m.isOurs(pid) {
		return nil, nil
	}
	m.pid.Store(int64(pid))
	m.Logger.Info("adopted running containerd", "pid", pid, "address", m.Address())
	return pollExit(ctx, pid, m.isOurs), nil
}

// isOurs reports whether pid is alive and is a containerd started with this engine's config.
func (m *Managed) isOurs(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	for i := 0; i+1 < len(args); i++ {
		if string(args[i]) == "--config" && string(args[i+1]) == m.configPath() {
			return !isZombie(pid)
		}
	}
	return false
}

// spawn starts a new containerd in its own session and returns a channel closed when it exits.
func (m *Managed) spawn() (<-chan struct{}, error) {
	logFile, err := os.OpenFile(m.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open containerd log: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command(m.Binary, "--config", m.configPath())
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(childEnv(os.Environ()), "PATH="+filepath.Dir(m.Binary)+":"+os.Getenv("PATH"))
	if os.Getenv("GOGC") == "" {
		cmd.Env = append(cmd.Env, "GOGC="+strconv.Itoa(GCPercent))
	}
	// Its own session: signals to berthd's process group (Ctrl-C, a supervisor's SIGTERM) never
	// reach containerd, and it survives berthd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd %s: %w", m.Binary, err)
	}
	pid := cmd.Process.Pid
	m.pid.Store(int64(pid))
	if err := os.WriteFile(m.pidPath(), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		m.Logger.Warn("cannot write containerd pid file; a restarted berthd will not adopt it", "error", err)
	}
	m.Logger.Info("started containerd", "pid", pid, "address", m.Address(), "log", m.logPath())

	exited := make(chan struct{})
	// This goroutine reaps the child; it ends when containerd exits, which may be after Close.
	go func() {
		err := cmd.Wait()
		m.Logger.Debug("containerd exited", "pid", pid, "status", err)
		close(exited)
	}()
	return exited, nil
}

// supervise restarts containerd each time it exits, with exponential back-off (reset once it has
// stayed up a while), until ctx is cancelled.
func (m *Managed) supervise(ctx context.Context, exited <-chan struct{}) {
	defer close(m.done)
	const minDelay, maxDelay, stable = 100 * time.Millisecond, 10 * time.Second, 30 * time.Second
	delay := minDelay
	started := time.Now()
	for {
		if exited != nil {
			select {
			case <-ctx.Done():
				return
			case <-exited:
			}
			m.pid.Store(0)
			m.restarts.Add(1)
			m.Logger.Warn("managed containerd exited; restarting", "after", delay)
		}
		if time.Since(started) > stable {
			delay = minDelay
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxDelay)
		started = time.Now()
		var err error
		if exited, err = m.spawn(); err != nil {
			m.Logger.Error("cannot restart managed containerd", "error", err)
			exited = nil
		}
	}
}

// waitReady waits until containerd accepts connections on its socket.
func (m *Managed) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("unix", m.Address(), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("managed containerd did not answer on %s within %s (see %s): %w", m.Address(), timeout, m.logPath(), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pollExit returns a channel closed once pid no longer satisfies alive. It is for processes that
// are not berthd's children, whose exit cannot be waited for. Polling stops when ctx is done.
func pollExit(ctx context.Context, pid int, alive func(int) bool) <-chan struct{} {
	exited := make(chan struct{})
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for alive(pid) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		close(exited)
	}()
	return exited
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name, which may itself contain spaces.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

// childEnv is berthd's environment without what systemd gave berthd alone: containerd (which
// speaks sd_notify too) must not report itself ready, or stopping, as if it were the unit's
// main process, nor think the unit's watchdog is its own.
func childEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			return true
		}
		return false
	})
}
