// Package runtime runs pods and containers through containerd: sandboxes, containers, OCI specs,
// tasks, exits, logs, stats and streaming. Everything it knows is kept in containerd (see
// DESIGN.md, key decision 1).
package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-runtime/berth/cgroup"
	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/config"
	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/runtime/annotation"
	"github.com/berth-runtime/berth/runtime/spec"
)

// Namespace is the containerd namespace berth keeps all its objects in, so that it never sees or
// touches another client's containers.
const Namespace = "berth"

// readyTimeout bounds the health check behind CRI Status, which the kubelet calls every few
// seconds and must never hang on a stuck containerd.
const readyTimeout = 2 * time.Second

// Options configure a Runtime.
type Options struct {
	// BootID is the node's boot id; empty: read from /proc/sys/kernel/random/boot_id.
	BootID string
	// StateDir is berth's state directory; pods keep their files and pinned namespaces in
	// StateDir/pods/<id>.
	StateDir string
	// RootDir is berth's data directory. A pod with a user namespace of its own keeps its
	// resolv.conf, hosts and hostname in RootDir/pods/<id> instead (see podFilesDir). Empty:
	// StateDir's.
	RootDir string
	// Network wires pods with CNI.
	Network *cni.Network
	// Logger receives the runtime's events.
	Logger *slog.Logger
	// PauseBinary is berth-pause, the infra process of pods that share a PID namespace.
	PauseBinary string
	// PauseRootfsDir is where the infra process's root file system (berth-pause alone) is made:
	// under berth's root, not its state, for /run is noexec on many nodes (Debian's initramfs
	// mounts it so) and the infra process is executed from there. Empty: StateDir/pause-rootfs.
	PauseRootfsDir string
	// CgroupDriver is "cgroupfs" or "systemd".
	CgroupDriver string
	// Images finds the images containers are made from.
	Images Images
	// SeccompProfileRoot is where relative Localhost seccomp profiles are found.
	SeccompProfileRoot string
	// Shim says how containerd runs runc shims; see ShimConfig.
	Shim ShimConfig
	// TolerateMissingHugetlb leaves hugepage limits out of specs when the node has no hugetlb
	// controller, rather than failing the container.
	TolerateMissingHugetlb bool
	// OwnShims makes berth start each new pod's shim itself, with the pod (see ShimConfig);
	// it needs Shim.Binary.
	OwnShims bool
	// Handlers are the runtime handlers besides DefaultHandler: name to the OCI runtime
	// executable the runc shim runs for their pods ("": the shim's runc).
	Handlers map[string]string
	// Annotations are, by runtime handler, the pod and container annotations that reach the OCI
	// spec of its containers; none for a handler not in it.
	Annotations map[string]annotation.Allowlist
	// Ulimits are the rlimits of every container's process; none: the runtime's own.
	Ulimits []specs.POSIXRlimit
	// UnprivilegedPorts and UnprivilegedICMP give pods with their own network namespace
	// net.ipv4.ip_unprivileged_port_start=0 and the whole net.ipv4.ping_group_range unless
	// they set those sysctls themselves.
	UnprivilegedPorts, UnprivilegedICMP bool
	// CDISpecDirs are the directories of CDI device specs; none turns CDI off.
	CDISpecDirs []string
	// TempMountDir is where containerd's temporary mounts go in this process
	// (mount.SetTempMountLocation, set by the caller); Load unmounts what a killed berthd left
	// there. Empty: the system's temporary directory, which Load leaves alone.
	TempMountDir string
	// Restore says which checkpoints containers may be restored from; none by default.
	Restore RestoreOptions
	// CRIU is the criu binary runc checkpoints and restores with (it must be the one runc finds
	// on the shims' PATH); empty: there is none, and checkpoints fail with FailedPrecondition.
	CRIU string
}

// Images is what the runtime needs of the image service.
type Images interface {
	// Lookup returns the image ref names (id, tag or digest reference) with its config; an
	// image that is not there is errdefs.ErrNotFound.
	Lookup(ctx context.Context, ref string) (*image.Image, error)
	FsInfo(ctx context.Context) (image.FsUsage, error)
}

// DefaultHandler is the runtime handler a pod gets when it names none.
const DefaultHandler = config.DefaultRuntimeHandler

// Runtime runs berth's pods and containers in its containerd namespace. It is safe for concurrent
// use: calls on one pod are ordered by that pod's lock, calls on different pods run in parallel.
type Runtime struct {
	client    *containerd.Client
	stateDir  string
	rootDir   string
	network   *cni.Network
	log       *slog.Logger
	sandboxes *sandboxStore

	containers *containerStore
	images     Images
	settings   spec.Settings

	pauseBinary    string
	pauseRootfsDir string
	cgroupDriver   string
	// bootID is the node's boot id (/proc/sys/kernel/random/boot_id).
	bootID string
	// cgroups removes the cgroups berth and runc make; pendingCgroups keeps those that were
	// still busy when their container or pod went.
	cgroups        *cgroup.Remover
	pendingCgroups *cgroup.Pending
	// cgroupParents counts the pods of each cgroup parent and knows those berth made.
	cgroupParents *cgroup.Parents
	shim          ShimConfig
	ownShims      bool
	handlers      map[string]string
	annotations   map[string]annotation.Allowlist
	// tempMountDir: see Options.
	tempMountDir string
	// restore and criu: see Options.
	restore RestoreOptions
	criu    string
	// unprivilegedPorts and unprivilegedICMP: see Options.
	unprivilegedPorts, unprivilegedICMP bool
	stats                               statsCache
	// layerRefreshes bounds the writable layer measurements made aside from stats calls.
	layerRefreshes chan struct{}
	events         eventBus
	// loaded is closed once Load has rebuilt the state; pod calls wait for it.
	loaded chan struct{}
	// userns says whether pods can have user namespaces of their own.
	userns usernsState
	// oomLog, when set, replaces the kernel's log as the witness of OOM kills (tests).
	oomLog func(leaf string) (bool, error)
}

// New returns a Runtime over client, whose default namespace must be Namespace. Load must be
// called before it serves.
func New(client *containerd.Client, opts Options) *Runtime {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cgroups := cgroup.NewRemover(opts.CgroupDriver)
	bootID := opts.BootID
	if bootID == "" {
		b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		bootID = strings.TrimSpace(string(b))
	}
	return &Runtime{client: client, stateDir: opts.StateDir, rootDir: opts.RootDir, network: opts.Network, log: opts.Logger,
		sandboxes: newSandboxStore(), loaded: make(chan struct{}),
		containers: newContainerStore(), images: opts.Images,
		settings:    hostSettings(opts),
		pauseBinary: opts.PauseBinary, pauseRootfsDir: opts.PauseRootfsDir, cgroupDriver: opts.CgroupDriver, bootID: bootID,
		cgroups: cgroups, pendingCgroups: cgroup.NewPending(filepath.Join(opts.StateDir, "cgroups-pending")),
		cgroupParents: cgroup.NewParents(opts.CgroupDriver, filepath.Join(opts.StateDir, "cgroup-parents"), cgroups), shim: opts.Shim,
		ownShims: opts.OwnShims && opts.Shim.Binary != "", handlers: opts.Handlers, annotations: opts.Annotations, layerRefreshes: make(chan struct{}, 2),
		unprivilegedPorts: opts.UnprivilegedPorts, unprivilegedICMP: opts.UnprivilegedICMP, tempMountDir: opts.TempMountDir,
		restore: opts.Restore, criu: opts.CRIU}
}

// LoadInBackground calls Load until it succeeds (containerd may not answer yet) or ctx ends,
// then watches the pods' health (watchPodHealth) until ctx ends.
// Until then, calls about pods wait, bounded by their own deadlines: answering them from an
// empty state would tell the kubelet its pods are gone.
func (r *Runtime) LoadInBackground(ctx context.Context) {
	go func() {
		delay := 100 * time.Millisecond
		for {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.Load(lctx)
			cancel()
			if err == nil {
				close(r.loaded)
				go r.watchOOMs(ctx)
				r.watchPodHealth(ctx) // until ctx ends
				return
			}
			r.log.Warn("cannot load state from containerd yet; retrying", "error", err, "after", delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
		}
	}()
}

// waitLoaded waits until the state is loaded, or says why not.
func (r *Runtime) waitLoaded(ctx context.Context) error {
	select {
	case <-r.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("berth has not loaded its pods from containerd yet (is containerd answering?): %w", errdefs.ErrUnavailable)
	}
}

// Load rebuilds berth's view of its pods from containerd, which holds a record of each. It must
// run once, before any call about pods; LoadInBackground retries it.
func (r *Runtime) Load(ctx context.Context) error {
	records, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q==%s", labelKind, kindSandbox))
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	// What a berthd killed inside a call left: released before any call is served.
	if err := r.releaseOrphanedLeases(ctx); err != nil {
		r.log.Warn("cannot release leases a killed berthd left", "error", err)
	}
	if err := r.cleanTempMounts(); err != nil {
		r.log.Warn("cannot clean the temporary mounts a killed berthd left", "error", err)
	}
	r.sweepPendingCgroups(ctx)
	r.cgroupParents.Reset()
	known := map[string]bool{}
	for _, c := range records {
		known[c.ID] = true
	}
	r.removeOrphanedPodFiles(known)
	for _, c := range records {
		sb, err := r.loadSandbox(c)
		if err != nil {
			r.log.Error("cannot load pod sandbox record; leaving it alone", "sandbox", c.ID, "error", err)
			continue
		}
		if sb.rebooted {
			r.log.Info("pod sandbox from before the node's reboot; reporting it NOTREADY", "sandbox", sb.ID)
			if err := r.saveRecord(ctx, sb); err != nil {
				r.log.Warn("cannot save a pod's NOTREADY state", "sandbox", sb.ID, "error", err)
			}
		}
		r.readShimLog(sb)
		r.sandboxes.add(sb)
		r.cgroupParents.Rejoin(sb.Config.GetLinux().GetCgroupParent())
	}
	r.removeOrphanedCgroupParents(ctx)
	if err := r.loadContainers(ctx); err != nil {
		return err
	}
	r.removeOrphanedCheckpointFiles()
	r.log.Info("loaded state from containerd", "sandboxes", len(records), "containers", len(r.containers.list("")))
	return nil
}

// Handlers lists the runtime handlers pods can ask for.
func (r *Runtime) Handlers() []string {
	return append([]string{DefaultHandler}, slices.Sorted(maps.Keys(r.handlers))...)
}

// Connect returns a containerd client for address. It does not wait for containerd: a containerd
// that is down or not there yet makes calls fail, not Connect, and the client reconnects when it
// comes back.
func Connect(address string) (*containerd.Client, error) {
	c, err := containerd.New(address,
		containerd.WithDefaultNamespace(Namespace),
		// Bounds the reconnect back-off, so that a restarted containerd is found again quickly.
		containerd.WithTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("containerd client for %s: %w", address, err)
	}
	return c, nil
}

// Ready reports nil when containerd answers its health check, else why not.
func (r *Runtime) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	serving, err := r.client.IsServing(ctx)
	if err != nil {
		return fmt.Errorf("containerd is not answering: %w", err)
	}
	if !serving {
		return fmt.Errorf("containerd is not serving")
	}
	return nil
}

// EngineVersion returns containerd's version and revision.
func (r *Runtime) EngineVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	v, err := r.client.Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd version: %w", err)
	}
	return v.Version, nil
}
