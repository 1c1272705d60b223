package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/runtime/spec"
	"github.com/berth-runtime/berth/runtime/testhook"
)

// snapshotter is where containers' root file systems live; image pulls unpack into it.
const snapshotter = "overlayfs"

// CreateContainer makes a container in a ready pod from an image the node has: a writable
// snapshot of the image, an OCI spec from the config, and a containerd record. It returns the
// container id. An image that is a checkpoint makes the container from the checkpoint's base
// image, and its start restores the checkpoint's processes (see openCheckpoint).
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig) (string, error) {
	if err := validateContainerConfig(cfg); err != nil {
		return "", err
	}
	steps := stepTimer{start: time.Now()}
	if _, err := r.readySandbox(ctx, sandboxID); err != nil {
		return "", err
	}
	restore, img, err := r.openCheckpoint(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return "", err
	}
	if restore != nil {
		defer restore.close()
		img = restore.base
	}
	return r.createContainer(ctx, &steps, sandboxID, cfg, img, restore)
}

// validateContainerConfig checks what CreateContainer needs of a container's config.
func validateContainerConfig(cfg *runtimeapi.ContainerConfig) error {
	switch {
	case cfg == nil || cfg.GetMetadata() == nil:
		return fmt.Errorf("config.metadata: missing: %w", errdefs.ErrInvalidArgument)
	case cfg.GetMetadata().GetName() == "":
		return fmt.Errorf("config.metadata.name: empty: %w", errdefs.ErrInvalidArgument)
	case cfg.GetLogPath() != "" && !filepath.IsLocal(cfg.GetLogPath()):
		return fmt.Errorf("config.log_path: %q must be a relative path inside the pod's log directory: %w", cfg.GetLogPath(), errdefs.ErrInvalidArgument)
	case cfg.GetImage().GetImage() == "":
		return fmt.Errorf("config.image.image: empty: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// readySandbox finds pod sandbox id, which must be ready for containers.
func (r *Runtime) readySandbox(ctx context.Context, id string) (*Sandbox, error) {
	sb, err := r.loadedSandbox(ctx, id)
	if err != nil {
		return nil, err
	}
	if sb.view().State != SandboxReady {
		return nil, fmt.Errorf("pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	return sb, nil
}

// createContainer makes container cfg in pod sandboxID from img (nil: the image cfg names),
// restored from restore's checkpoint when that is not nil; steps times it from the call's start.
func (r *Runtime) createContainer(ctx context.Context, steps *stepTimer, sandboxID string, cfg *runtimeapi.ContainerConfig, img *image.Image, restore *restoreSource) (_ string, retErr error) {
	sb, err := r.readySandbox(ctx, sandboxID)
	if err != nil {
		return "", err
	}
	pod := sb.view()
	if img == nil {
		if img, err = r.images.Lookup(ctx, cfg.GetImage().GetImage()); errdefs.IsNotFound(err) {
			return "", fmt.Errorf("image %q is not on this node; pull it first: %w", cfg.GetImage().GetImage(), errdefs.ErrNotFound)
		} else if err != nil {
			return "", err
		}
	}

	id := newID()
	name := containerName(sb.ID, cfg.GetMetadata())
	if err := r.containers.reserve(name, id); err != nil {
		return "", err
	}
	var undo []func(context.Context) error
	defer func() {
		if retErr == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](ctx); err != nil {
				r.log.Error("rolling back a failed container left something behind", "container", id, "error", err)
			}
		}
		r.containers.release(name, id)
	}()

	// A lease keeps containerd's garbage collector off the snapshot until the record holds it.
	ctx, done, err := r.client.WithLease(ctx, createContainerLease()...)
	if err != nil {
		return "", err
	}
	defer done(context.WithoutCancel(ctx))

	steps.mark("image")
	uids, gids, _ := podUserns(pod.Config)
	mounts, err := r.prepareSnapshot(ctx, id, img, uids, gids)
	if err != nil {
		return "", err
	}
	steps.mark("snapshot")
	undo = append(undo, func(ctx context.Context) error { return r.client.SnapshotService(snapshotter).Remove(ctx, id) })
	testhook.Hold(testhook.CreateAfterSnapshot)
	var passwd, group []byte
	var volumes map[string]string
	undo = append(undo, func(context.Context) error { return os.RemoveAll(r.containerDir(id)) })
	if err := mount.WithReadonlyTempMount(ctx, mounts, func(root string) (err error) {
		testhook.Hold(testhook.CreateImageMounted)
		passwd = readImageFile(root, "etc/passwd")
		group = readImageFile(root, "etc/group")
		volumes, err = r.prepareImageVolumes(id, img.Config.Config.Volumes, cfg, root)
		return err
	}); err != nil {
		return "", fmt.Errorf("read users and volumes of image %s: %w", img.ID, err)
	}
	steps.mark("users")
	cfg, imageVolumes, err := r.podImageVolumes(ctx, sb, cfg, uids, gids)
	if err != nil {
		return "", err
	}

	var targetPid uint32
	if cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_TARGET {
		target, err := r.containers.get(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetTargetId())
		if err != nil {
			return "", fmt.Errorf("security_context.namespace_options.target_id: %w", err)
		}
		targetPid = target.view().State.Pid
	}
	gen, err := spec.Generate(spec.Input{
		ID: id, Config: cfg, Image: img.Config.Config, ImageName: cfg.GetImage().GetImage(), Settings: r.settings,
		Annotations: r.annotations[sb.RuntimeHandler].Filter(pod.Config.GetAnnotations(), cfg.GetAnnotations()),
		Passwd:      passwd, Group: group, TargetPid: targetPid, ImageVolumes: imageVolumes, ImageDefinedVolumes: volumes,
		Sandbox: spec.Sandbox{ID: sb.ID, Config: pod.Config, NetNS: sb.NetNS, IPC: sb.IPC, UTS: sb.UTS,
			InfraPid: pod.InfraPid, Dir: r.podFilesDir(sb), Shm: podShm(sb), Hostname: podHostname(pod.Config),
			Userns: sb.Userns, UIDMappings: uids, GIDMappings: gids},
	})
	if err != nil {
		return "", err
	}
	if gen.HugepageLimitsDropped {
		r.log.Debug("hugepage limits left out: the node has no hugetlb cgroup controller", "container", id, "pod", sb.ID)
	}
	steps.mark("spec")
	specAny, err := typeurl.MarshalAny(gen.Spec)
	if err != nil {
		return "", err
	}
	var logPath string
	if dir, p := pod.Config.GetLogDirectory(), cfg.GetLogPath(); dir != "" && p != "" {
		logPath = filepath.Join(dir, p)
	}
	if restore != nil {
		undo = append(undo, func(context.Context) error { return os.RemoveAll(r.restoreDir(id)) })
		if logPath != "" {
			if _, err := os.Lstat(logPath); os.IsNotExist(err) {
				undo = append(undo, func(context.Context) error {
					if err := os.Remove(logPath); err != nil && !os.IsNotExist(err) {
						return err
					}
					return nil
				})
			}
		}
		if err := r.restoreFiles(ctx, restore, id, mounts, gen.Spec, logPath); err != nil {
			return "", fmt.Errorf("restore container %s from %q: %w", id, cfg.GetImage().GetImage(), err)
		}
		steps.mark("restore")
	}
	runtimeInfo, err := r.runtimeInfo(pod.RuntimeHandler)
	if err != nil {
		return "", err
	}

	c := &Container{
		ID: id, SandboxID: sb.ID, Config: cfg, ImageRef: img.ID.String(), ImageName: cfg.GetImage().GetImage(),
		StopSignal: stopSignal(cfg, img.Config.Config.StopSignal), UID: gen.UID, GID: gen.GID, Groups: gen.Groups,
		Resources: spec.AppliedResources(gen.Spec),
		State:     ContainerState{State: ContainerCreated, CreatedAt: time.Now()},
		LogPath:   logPath, Restore: restore != nil,
		exited: make(chan struct{}),
	}
	close(c.exited) // not running
	c.process = gen.Spec.Process
	ext, err := c.extension()
	if err != nil {
		return "", err
	}
	md := cfg.GetMetadata()
	rec := containers.Container{
		ID: id,
		Labels: map[string]string{
			labelKind: kindContainer, labelSandbox: sb.ID, image.ContainerNameLabel: md.GetName(),
			labelPodAttempt: fmt.Sprint(md.GetAttempt()),
		},
		Image: img.ID.String(), Runtime: runtimeInfo, Spec: specAny,
		Snapshotter: snapshotter, SnapshotKey: id,
		Extensions: map[string]typeurl.Any{containerExtension: ext},
	}
	if sb.OwnShim {
		rec.SandboxID = sb.ID
	}
	if _, err := r.client.ContainerService().Create(ctx, rec); err != nil {
		return "", fmt.Errorf("record container %s in containerd: %w", id, err)
	}
	undo = append(undo, func(ctx context.Context) error { return r.client.ContainerService().Delete(ctx, id) })
	if err := os.MkdirAll(r.containerDir(id), 0o700); err != nil {
		return "", err
	}
	steps.mark("record")
	r.containers.add(c)
	r.emitFor(runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, c)
	r.log.Debug("container created", "container", id, "sandbox", sb.ID, "steps", steps.String())
	return id, nil
}

// stopSignal is the signal that stops the container: the config's stop_signal (the kubelet's
// container lifecycle stopSignal), else the image's STOPSIGNAL; "" means SIGTERM.
func stopSignal(cfg *runtimeapi.ContainerConfig, image string) string {
	if s := cfg.GetStopSignal(); s != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return strings.TrimPrefix(s.String(), "SIGNAL_")
	}
	return image
}

// prepareSnapshot makes the container's writable layer on top of the image's (see
// snapshotOfImage).
func (r *Runtime) prepareSnapshot(ctx context.Context, id string, img *image.Image, uids, gids []specs.LinuxIDMapping) ([]mount.Mount, error) {
	mounts, err := r.snapshotOfImage(ctx, r.client.SnapshotService(snapshotter).Prepare, id, img, uids, gids)
	if err != nil {
		return nil, fmt.Errorf("prepare the root file system of container %s: %w", id, err)
	}
	return mounts, nil
}

// snapshotOfImage makes the snapshot key on top of img's layers with create (the snapshotter's
// Prepare, or View for a read-only one), unpacking the image first if it was pulled without
// being unpacked. The image's layers are named by the diff ids of its config, which the image
// service has already read: a pulled image costs the one call, and only an image that is not
// unpacked is read again. For a pod with a user namespace of its own (uids, gids: its
// mappings), the snapshotter mounts the image's layers idmapped, so that the pod's root owns
// what the node's root owns in them.
func (r *Runtime) snapshotOfImage(ctx context.Context, create func(context.Context, string, string, ...snapshots.Opt) ([]mount.Mount, error),
	key string, img *image.Image, uids, gids []specs.LinuxIDMapping) ([]mount.Mount, error) {
	var opts []snapshots.Opt
	if len(uids) > 0 {
		opts = append(opts, containerd.WithUserNSRemapperLabels(uids, gids))
	}
	parent := identity.ChainID(img.Config.RootFS.DiffIDs).String()
	mounts, err := create(ctx, key, parent, opts...)
	if errdefs.IsNotFound(err) {
		// The image's top layer is not there: unpack the image, then try again.
		if uerr := r.unpack(ctx, img); uerr != nil {
			return nil, uerr
		}
		mounts, err = create(ctx, key, parent, opts...)
	}
	return mounts, err
}

// unpack unpacks img into the snapshotter.
func (r *Runtime) unpack(ctx context.Context, img *image.Image) error {
	cimg, err := r.client.GetImage(ctx, img.Record())
	if err != nil {
		return fmt.Errorf("image %s: %w", img.ID, err)
	}
	if err := cimg.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack image %s: %w", img.ID, err)
	}
	return nil
}

// readImageFile reads a small file of an image's root file system, "" when absent. Symlinks are
// not followed out of the root: the image does not get to point berthd at the node's files.
func readImageFile(root, rel string) []byte {
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return nil
	}
	b, _ := os.ReadFile(p)
	return b
}

func (r *Runtime) containerDir(id string) string { return filepath.Join(r.stateDir, "containers", id) }
