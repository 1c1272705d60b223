package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/fifo"
	"github.com/containernetworking/cni/libcni"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-runtime/berth/runtime"
	"github.com/berth-runtime/berth/runtime/namespace"
	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

// floor is what starting a kubelet-shaped pod costs with no runtime in between: the parts
// berth cannot avoid, each timed alone on the same node in the same run.
type floor struct {
	// cniAdd is libcni's ADD of the bench's network into a fresh network namespace.
	cniAdd []time.Duration
	// shimStart is the runc shim's start command, as berth runs it for a pod, until it serves.
	shimStart []time.Duration
	// together is the CNI ADD and the shim's start run at once, as berth runs them: the time
	// until both are done. On 2 cores they compete for the CPU.
	together []time.Duration
	// runcCreate and runcStart are `runc create` and `runc start` of a copy of the bundle
	// containerd made for one of berth's containers (same spec, same namespaces joined).
	runcCreate, runcStart []time.Duration
}

// p50 is the floor of a pod's time to RUNNING at the median: the shim starts beside the CNI
// ADD, then the container is created and started.
func (f floor) p50() time.Duration {
	return percentile(f.together, 50) + percentile(f.runcCreate, 50) + percentile(f.runcStart, 50)
}

func binDir() string {
	if d := os.Getenv("BERTH_BIN_DIR"); d != "" {
		return d
	}
	return "/opt/berth/bin"
}

// measureFloor times each part n times. d is a berthd with one running kubelet-shaped pod whose
// container is containerID: its bundle is the one runc is timed with, in its namespaces.
func measureFloor(tmp string, d *daemon.Daemon, conflist []byte, containerID string, n int) (floor, error) {
	var f floor
	var err error
	dir := filepath.Join(tmp, "floor")
	address := filepath.Join(d.State, "containerd", "containerd.sock")
	shim := runtime.ShimConfig{
		Binary: filepath.Join(binDir(), "containerd-shim-runc-v2"), ContainerdBinary: filepath.Join(binDir(), "containerd"),
		Address: address, TTRPCAddress: address + ".ttrpc",
	}
	if f.cniAdd, err = floorCNI(filepath.Join(dir, "cni"), conflist, n, nil); err != nil {
		return f, fmt.Errorf("CNI ADD: %w", err)
	}
	if f.shimStart, err = floorShim(filepath.Join(dir, "shim"), shim, n); err != nil {
		return f, fmt.Errorf("shim start: %w", err)
	}
	if f.together, err = floorCNI(filepath.Join(dir, "together"), conflist, n, &shim); err != nil {
		return f, fmt.Errorf("CNI ADD beside a shim start: %w", err)
	}
	bundle := filepath.Join(d.State, "containerd", "io.containerd.runtime.v2.task", runtime.Namespace, containerID, "config.json")
	if f.runcCreate, f.runcStart, err = floorRunc(filepath.Join(dir, "runc"), bundle, n); err != nil {
		return f, fmt.Errorf("runc: %w", err)
	}
	return f, nil
}

// floorCNI times n CNI ADDs; with shim set, each ADD runs beside a shim's start and the time
// is until both are done.
func floorCNI(dir string, conflist []byte, n int, shim *runtime.ShimConfig) ([]time.Duration, error) {
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		return nil, err
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{"/opt/cni/bin", "/usr/lib/cni"}, filepath.Join(dir, "cache"), nil)
	var out []time.Duration
	for i := range n {
		nsDir := filepath.Join(dir, strconv.Itoa(i))
		paths, err := namespace.Pin(nsDir, []namespace.Kind{namespace.Net}, "")
		if err != nil {
			return nil, err
		}
		rt := &libcni.RuntimeConf{ContainerID: fmt.Sprintf("bench-floor-%d", i), NetNS: paths[namespace.Net], IfName: "eth0"}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		type started struct {
			took time.Duration
			err  error
		}
		shimDone := make(chan started, 1)
		start := time.Now()
		if shim != nil {
			go func() {
				// The shim's start is timed alone (its shutdown afterwards is not).
				took, err := oneShim(filepath.Join(dir, "shim", strconv.Itoa(i)), *shim, fmt.Sprintf("bench-floor-%d-t%d", os.Getpid(), i))
				shimDone <- started{took, err}
			}()
		} else {
			shimDone <- started{}
		}
		_, err = cni.AddNetworkList(ctx, list, rt)
		took := time.Since(start)
		s := <-shimDone
		if err == nil {
			err = s.err
		}
		out = append(out, max(took, s.took))
		if derr := cni.DelNetworkList(ctx, list, rt); err == nil {
			err = derr
		}
		cancel()
		if uerr := namespace.Unpin(nsDir); err == nil {
			err = uerr
		}
		if err != nil {
			return nil, err
		}
	}
	return out, os.RemoveAll(dir)
}

func floorShim(dir string, shim runtime.ShimConfig, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		id := fmt.Sprintf("bench-floor-%d-%d", os.Getpid(), i)
		d, err := oneShim(filepath.Join(dir, strconv.Itoa(i)), shim, id)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, os.RemoveAll(dir)
}

// oneShim starts a shim in dir as berth starts a pod's, and kills it again.
func oneShim(dir string, shim runtime.ShimConfig, id string) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	log, err := fifo.OpenFifo(context.Background(), filepath.Join(dir, "log"), unix.O_RDONLY|unix.O_CREAT|unix.O_NONBLOCK, 0o700)
	if err != nil {
		return 0, err
	}
	go func() { defer log.Close(); io.Copy(io.Discard, log) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	address, err := shim.Start(ctx, id, dir)
	took := time.Since(start)
	if address != "" {
		runtime.ShutdownShim(ctx, slog.New(slog.DiscardHandler), strings.TrimPrefix(address, "unix://"), true)
	}
	return took, err
}

// floorRunc creates and starts n containers from copies of the bundle spec at specPath with runc
// itself, each in a cgroup of its own, on a root file system of busybox.
func floorRunc(dir, specPath string, n int) (create, start []time.Duration, err error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return nil, nil, err
	}
	busybox, err := images.BusyboxPath()
	if err != nil {
		return nil, nil, err
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		return nil, nil, err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "sleep")); err != nil {
		return nil, nil, err
	}
	runc := filepath.Join(binDir(), "runc")
	root := filepath.Join(dir, "state")
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer null.Close()
	// The container inherits runc's stdio: files, never pipes, or runc's caller waits for the
	// container to close them. runc writes its errors to its log.
	log := filepath.Join(dir, "runc.log")
	run := func(args ...string) (time.Duration, error) {
		cmd := exec.Command(runc, append([]string{"--root", root, "--log", log}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
		begin := time.Now()
		err := cmd.Run()
		took := time.Since(begin)
		if err != nil {
			b, _ := os.ReadFile(log)
			return took, fmt.Errorf("runc %s: %w: %s", strings.Join(args, " "), err, b)
		}
		return took, nil
	}
	for i := range n {
		var spec specs.Spec
		if err := json.Unmarshal(b, &spec); err != nil {
			return nil, nil, err
		}
		id := fmt.Sprintf("bench-floor-%d-%d", os.Getpid(), i)
		spec.Root = &specs.Root{Path: rootfs}
		spec.Process.Args = []string{"sleep", "3600"}
		spec.Process.Terminal = false
		spec.Hooks = nil
		spec.Linux.CgroupsPath = filepath.Join("/berth-bench-floor", id)
		bundle := filepath.Join(dir, id)
		if err := os.MkdirAll(bundle, 0o700); err != nil {
			return nil, nil, err
		}
		cfg, _ := json.Marshal(spec)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600); err != nil {
			return nil, nil, err
		}
		c, err := run("create", "--bundle", bundle, id)
		if err == nil {
			create = append(create, c)
			var s time.Duration
			s, err = run("start", id)
			start = append(start, s)
		}
		if _, derr := run("delete", "--force", id); err == nil {
			err = derr
		}
		if err != nil {
			return nil, nil, err
		}
	}
	removeCgroups("/berth-bench-floor")
	return create, start, os.RemoveAll(dir)
}

// removeCgroups removes the (empty) cgroup path in every hierarchy, v1 or v2.
func removeCgroups(path string) {
	const root = "/sys/fs/cgroup"
	os.Remove(filepath.Join(root, path))
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		os.Remove(filepath.Join(root, e.Name(), path))
	}
}
