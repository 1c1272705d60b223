package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/fifo"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	"github.com/containernetworking/cni/libcni"
	"github.com/opencontainers/image-spec/identity"
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
	// taskCreate and taskStart are the same container's task created and started in a pod's
	// shim of its own, over the shim's task API with nothing in between: runc create and start
	// with all the shim does around them (rootfs mount, stdio FIFOs, pid file, OOM watch, exit
	// tracking), which berth cannot skip without leaving containerd's runc shim.
	taskCreate, taskStart []time.Duration
	// ctrdRecord, ctrdCreate and ctrdStart are the same container made through berth's
	// containerd, with no berth in between: the writable layer prepared and the container
	// recorded under a lease (the metadata commits CreateContainer makes), then its task
	// created in a shim of its own (the endpoint berth gives) and started.
	ctrdRecord, ctrdCreate, ctrdStart []time.Duration
}

// p50 is the floor of a pod's time to RUNNING at the median: the pod's network and shim, then
// the container created and started with runc.
func (f floor) p50() time.Duration {
	return f.podSetup() + percentile(f.runcCreate, 50) + percentile(f.runcStart, 50)
}

// withShimTasks is the floor with the container's task created and started in the pod's shim:
// the least a runtime built on containerd's runc shim can take.
func (f floor) withShimTasks() time.Duration {
	return f.podSetup() + percentile(f.taskCreate, 50) + percentile(f.taskStart, 50)
}

// withContainerd is the floor of a runtime that makes its containers through containerd and
// its runc shim: berth's time to RUNNING above it is what berth itself adds.
func (f floor) withContainerd() time.Duration {
	return f.podSetup() + percentile(f.ctrdRecord, 50) + percentile(f.ctrdCreate, 50) + percentile(f.ctrdStart, 50)
}

// podSetup is the CNI ADD and the shim's start at the median, at once or one after the other,
// whichever is shorter on this node.
func (f floor) podSetup() time.Duration {
	return min(percentile(f.together, 50), percentile(f.cniAdd, 50)+percentile(f.shimStart, 50))
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
	if f.taskCreate, f.taskStart, err = floorShimTasks(filepath.Join(dir, "shim-tasks"), shim, bundle, n); err != nil {
		return f, fmt.Errorf("the shim's task create and start: %w", err)
	}
	if f.ctrdRecord, f.ctrdCreate, f.ctrdStart, err = floorContainerd(filepath.Join(dir, "containerd"), shim, containerID, bundle, n); err != nil {
		return f, fmt.Errorf("containerd: %w", err)
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

// oneShim starts a shim in dir as berth starts a pod's, and stops it again.
func oneShim(dir string, shim runtime.ShimConfig, id string) (time.Duration, error) {
	socket, took, err := launchShim(dir, shim, id)
	if socket != "" {
		stopShim(socket)
	}
	return took, err
}

// launchShim starts a shim in dir as berth starts a pod's: it returns the shim's socket and how
// long its start command took.
func launchShim(dir string, shim runtime.ShimConfig, id string) (string, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	log, err := fifo.OpenFifo(context.Background(), filepath.Join(dir, "log"), unix.O_RDONLY|unix.O_CREAT|unix.O_NONBLOCK, 0o700)
	if err != nil {
		return "", 0, err
	}
	go func() { defer log.Close(); io.Copy(io.Discard, log) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	address, err := shim.Start(ctx, id, dir)
	return strings.TrimPrefix(address, "unix://"), time.Since(start), err
}

// stopShim tells the shim on socket to exit and waits until it has.
func stopShim(socket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runtime.ShutdownShim(ctx, slog.New(slog.DiscardHandler), socket, true)
}

// floorRunc creates and starts n containers from copies of the bundle spec at specPath with runc
// itself, each in a cgroup of its own, on a root file system of busybox.
func floorRunc(dir, specPath string, n int) (create, start []time.Duration, err error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return nil, nil, err
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := busyboxRootfs(rootfs); err != nil {
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
		id := fmt.Sprintf("bench-floor-%d-%d", os.Getpid(), i)
		spec, err := floorSpec(b, id, &specs.Root{Path: rootfs})
		if err != nil {
			return nil, nil, err
		}
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
	removeCgroups(floorCgroups)
	return create, start, os.RemoveAll(dir)
}

// busyboxRootfs makes dir a root file system with busybox as /bin/sleep.
func busyboxRootfs(dir string) error {
	busybox, err := images.BusyboxPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	return os.Symlink("busybox", filepath.Join(dir, "bin", "sleep"))
}

// floorShimTasks creates and starts n containers from copies of the bundle spec at specPath,
// each in a shim of its own started as berth starts a pod's, over the shim's task API: the
// root file system an overlay on busybox (as the snapshotter's), stdout and stderr FIFOs
// read and discarded (as berth copies them to the container's log). Only the Create and Start
// calls are timed.
func floorShimTasks(dir string, shim runtime.ShimConfig, specPath string, n int) (create, start []time.Duration, err error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return nil, nil, err
	}
	lower := filepath.Join(dir, "lower")
	if err := busyboxRootfs(lower); err != nil {
		return nil, nil, err
	}
	for i := range n {
		id := fmt.Sprintf("bench-floor-task-%d-%d", os.Getpid(), i)
		c, s, err := oneShimTask(filepath.Join(dir, strconv.Itoa(i)), shim, b, lower, id)
		if err != nil {
			return nil, nil, err
		}
		create, start = append(create, c), append(start, s)
	}
	removeCgroups(floorCgroups)
	return create, start, os.RemoveAll(dir)
}

// oneShimTask starts a shim in dir, creates and starts container id in it from spec (JSON) on an
// overlay with lower as its lower layer, and removes the container and the shim again.
func oneShimTask(dir string, shim runtime.ShimConfig, spec []byte, lower, id string) (create, start time.Duration, err error) {
	s, err := floorSpec(spec, id, &specs.Root{Path: "rootfs"})
	if err != nil {
		return 0, 0, err
	}
	bundle, upper, work, ioDir := filepath.Join(dir, "bundle"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "io")
	for _, d := range []string{filepath.Join(bundle, "rootfs"), upper, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return 0, 0, err
		}
	}
	cfg, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600); err != nil {
		return 0, 0, err
	}

	socket, _, err := launchShim(filepath.Join(dir, "shim"), shim, id)
	if socket != "" {
		defer stopShim(socket)
	}
	if err != nil {
		return 0, 0, err
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return 0, 0, err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	tasks := taskapi.NewTTRPCTaskClient(client)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), runtime.Namespace), time.Minute)
	defer cancel()

	stdio, err := discardedStdio(ctx, ioDir)
	if err != nil {
		return 0, 0, err
	}
	defer stdio.Close()

	begin := time.Now()
	_, err = tasks.Create(ctx, &taskapi.CreateTaskRequest{
		ID: id, Bundle: bundle, Stdout: stdio.Config().Stdout, Stderr: stdio.Config().Stderr,
		Rootfs: []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{
			"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work,
		}}},
	})
	create = time.Since(begin)
	if err != nil {
		return 0, 0, fmt.Errorf("create: %w", err)
	}
	begin = time.Now()
	_, err = tasks.Start(ctx, &taskapi.StartRequest{ID: id})
	start = time.Since(begin)
	if _, kerr := tasks.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(unix.SIGKILL), All: true}); err == nil && kerr != nil {
		err = fmt.Errorf("kill: %w", kerr)
	}
	if err == nil {
		_, err = tasks.Wait(ctx, &taskapi.WaitRequest{ID: id})
	}
	if _, derr := tasks.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err == nil && derr != nil {
		err = fmt.Errorf("delete: %w", derr)
	}
	return create, start, err
}

// floorContainerd makes n containers through the containerd at shim.Address as berth makes
// container containerID (its record's image, snapshotter and runtime; a copy of its bundle's
// spec), each with its task in a shim of its own, and removes them again.
func floorContainerd(dir string, shim runtime.ShimConfig, containerID, specPath string, n int) (record, create, start []time.Duration, err error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return nil, nil, nil, err
	}
	client, err := containerd.New(shim.Address, containerd.WithDefaultNamespace(runtime.Namespace))
	if err != nil {
		return nil, nil, nil, err
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), runtime.Namespace)
	model, err := client.ContainerService().Get(ctx, containerID)
	if err != nil {
		return nil, nil, nil, err
	}
	img, err := client.ImageService().Get(ctx, busyboxImage)
	if err != nil {
		return nil, nil, nil, err
	}
	diffIDs, err := containerd.NewImage(client, img).RootFS(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	parent := identity.ChainID(diffIDs).String()
	for i := range n {
		id := fmt.Sprintf("bench-floor-ctrd-%d-%d", os.Getpid(), i)
		s, err := floorSpec(b, id, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		// The pod's sandbox id, as berth records it: containerd then creates the task at the
		// endpoint given rather than running a shim's start command.
		rec := containers.Container{ID: id, Image: model.Image, Runtime: model.Runtime, Snapshotter: model.Snapshotter, SnapshotKey: id,
			SandboxID: model.SandboxID}
		if rec.Spec, err = typeurl.MarshalAny(s); err != nil {
			return nil, nil, nil, err
		}
		r, c, st, err := oneContainerdTask(ctx, client, filepath.Join(dir, strconv.Itoa(i)), shim, rec, parent)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("container %d: %w", i, err)
		}
		record, create, start = append(record, r), append(create, c), append(start, st)
	}
	removeCgroups(floorCgroups)
	return record, create, start, os.RemoveAll(dir)
}

// oneContainerdTask starts a shim in dir, makes the container rec on snapshot parent through
// containerd, creates its task in that shim and starts it, timing each, then removes it all.
func oneContainerdTask(ctx context.Context, client *containerd.Client, dir string, shim runtime.ShimConfig, rec containers.Container, parent string) (record, create, start time.Duration, err error) {
	socket, _, err := launchShim(filepath.Join(dir, "shim"), shim, rec.ID)
	if socket != "" {
		defer stopShim(socket)
	}
	if err != nil {
		return 0, 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sn := client.SnapshotService(rec.Snapshotter)

	begin := time.Now()
	// As berth does: a lease keeps containerd's garbage collector off the snapshot until the
	// record holds it.
	lctx, done, err := client.WithLease(ctx, leases.WithExpiration(time.Hour))
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := sn.Prepare(lctx, rec.ID, parent); err != nil {
		done(context.WithoutCancel(ctx))
		return 0, 0, 0, err
	}
	defer sn.Remove(context.WithoutCancel(ctx), rec.ID)
	_, err = client.ContainerService().Create(lctx, rec)
	if derr := done(context.WithoutCancel(ctx)); err == nil {
		err = derr
	}
	if err != nil {
		return 0, 0, 0, err
	}
	defer client.ContainerService().Delete(context.WithoutCancel(ctx), rec.ID)
	record = time.Since(begin)

	stdio, err := discardedStdio(ctx, filepath.Join(dir, "io"))
	if err != nil {
		return 0, 0, 0, err
	}
	defer stdio.Close()

	begin = time.Now()
	container, err := client.LoadContainer(ctx, rec.ID)
	if err != nil {
		return 0, 0, 0, err
	}
	task, err := container.NewTask(ctx, func(string) (cio.IO, error) { return stdio, nil },
		containerd.WithTaskAPIEndpoint("ttrpc+unix://"+socket, runtime.ShimTaskAPIVersion))
	create = time.Since(begin)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("task create: %w", err)
	}
	defer task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	begin = time.Now()
	exited, err := task.Wait(ctx)
	if err == nil {
		err = task.Start(ctx)
	}
	start = time.Since(begin)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("task start: %w", err)
	}
	if err := task.Kill(ctx, unix.SIGKILL); err != nil {
		return 0, 0, 0, err
	}
	<-exited
	return record, create, start, nil
}

// floorCgroups is the cgroup path under which the floor's containers run.
const floorCgroups = "/berth-bench-floor"

// floorSpec is the spec (JSON) of one of berth's containers made the floor's container id: it
// sleeps, with no terminal and no hooks, in a cgroup of its own, on root (nil: the spec's own).
func floorSpec(spec []byte, id string, root *specs.Root) (*specs.Spec, error) {
	var s specs.Spec
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, err
	}
	if root != nil {
		s.Root = root
	}
	s.Process.Args = []string{"sleep", "3600"}
	s.Process.Terminal = false
	s.Hooks = nil
	s.Linux.CgroupsPath = filepath.Join(floorCgroups, id)
	return &s, nil
}

// discardedStdio makes stdout and stderr FIFOs in dir and reads them, as berth reads a
// container's, into nothing.
func discardedStdio(ctx context.Context, dir string) (*cio.DirectIO, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fifos := cio.NewFIFOSet(cio.Config{Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr")}, nil)
	stdio, err := cio.NewDirectIO(ctx, fifos)
	if err != nil {
		return nil, err
	}
	go io.Copy(io.Discard, stdio.Stdout)
	go io.Copy(io.Discard, stdio.Stderr)
	return stdio, nil
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
