package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crierrors "k8s.io/cri-api/pkg/errors"

	"github.com/berth-runtime/berth/image"
)

// Image volumes (the kubelet's `image` volume source, KEP 4639): a mount whose source is an
// image the node has pulled, read-only. A pod mounts each image once, a read-only view of the
// image's unpacked layers at <pod dir>/image-volumes/<image id>, and its containers bind it
// (or a directory of it, image_sub_path). The views belong to a lease of the pod's, so
// containerd's garbage collector leaves them (and the layers under them) alone until the pod
// stops, when they are unmounted and removed.

// imageVolumesDir is where a pod's image volumes are mounted, in its directory.
func imageVolumesDir(sandboxDir string) string { return filepath.Join(sandboxDir, "image-volumes") }

// imageVolumeLease is the containerd lease that holds a pod's image volume snapshots.
func imageVolumeLease(sandboxID string) string { return "berth-image-volumes-" + sandboxID }

// imageVolumeKey is the snapshot key of a pod's view of an image.
func imageVolumeKey(sandboxID, imageID string) string {
	return "berth-image-volume-" + sandboxID + "-" + imageID
}

// imageVolumeError marks an image volume's failure the way the kubelet recognises it (its
// message starts with ImageVolumeMountFailed), keeping the errdefs kind for the gRPC code.
func imageVolumeError(field string, err error) error {
	return fmt.Errorf("%w: %s: %w", crierrors.ErrImageVolumeMountFailed, field, err)
}

// podImageVolumes mounts cfg's image volumes for a ready pod (see mountImageVolumes), holding
// the pod's lock so that its stop does not unmount them under the create.
func (r *Runtime) podImageVolumes(ctx context.Context, sb *Sandbox, cfg *runtimeapi.ContainerConfig, uids, gids []specs.LinuxIDMapping) (*runtimeapi.ContainerConfig, map[int]string, error) {
	if !slices.ContainsFunc(cfg.GetMounts(), func(m *runtimeapi.Mount) bool { return m.GetImage() != nil }) {
		return cfg, nil, nil
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.removed || sb.State != SandboxReady {
		return nil, nil, fmt.Errorf("pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	return r.mountImageVolumes(ctx, sb, cfg, uids, gids)
}

// mountImageVolumes mounts the images of cfg's image mounts for the pod, once per pod and
// image, and returns the host path each image mount binds, by its index in cfg's mounts, with
// cfg's mounts given the image id they resolved to (ContainerStatus reports it as image_ref).
// uids and gids are the pod's user namespace mappings (nil for a pod in the node's).
// The caller holds sb.mu: a pod's stop, which unmounts them, waits for it.
func (r *Runtime) mountImageVolumes(ctx context.Context, sb *Sandbox, cfg *runtimeapi.ContainerConfig, uids, gids []specs.LinuxIDMapping) (*runtimeapi.ContainerConfig, map[int]string, error) {
	var sources map[int]string
	var resolved *runtimeapi.ContainerConfig
	for i, m := range cfg.GetMounts() {
		if m.GetImage() == nil {
			continue
		}
		field := fmt.Sprintf("mounts[%d]", i)
		ref := m.GetImage().GetImage()
		switch {
		case m.GetHostPath() != "":
			return nil, nil, imageVolumeError(field, fmt.Errorf("host_path %q: must be empty for an image mount: %w", m.GetHostPath(), errdefs.ErrInvalidArgument))
		case !m.GetReadonly():
			return nil, nil, imageVolumeError(field, fmt.Errorf("readonly: an image mount is read-only: %w", errdefs.ErrInvalidArgument))
		case ref == "":
			return nil, nil, imageVolumeError(field, fmt.Errorf("image.image: empty: %w", errdefs.ErrInvalidArgument))
		}
		img, err := r.images.Lookup(ctx, ref)
		if errdefs.IsNotFound(err) {
			return nil, nil, imageVolumeError(field, fmt.Errorf("image %q is not on this node; pull it first: %w", ref, errdefs.ErrNotFound))
		}
		if err != nil {
			return nil, nil, imageVolumeError(field, err)
		}
		root, err := r.mountImageVolume(ctx, sb, img, uids, gids)
		if err != nil {
			return nil, nil, imageVolumeError(field, err)
		}
		src := root
		if sub := m.GetImageSubPath(); sub != "" {
			if src, err = imageSubPath(root, sub); err != nil {
				return nil, nil, imageVolumeError(field, fmt.Errorf("image_sub_path: %w", err))
			}
		}
		if sources == nil {
			sources = map[int]string{}
			resolved = proto.Clone(cfg).(*runtimeapi.ContainerConfig)
		}
		sources[i] = src
		resolved.Mounts[i].Image.ImageRef = img.ID.String()
	}
	if resolved == nil {
		return cfg, nil, nil
	}
	return resolved, sources, nil
}

// mountImageVolume mounts the pod's read-only view of img, unless it is mounted already, and
// returns where.
func (r *Runtime) mountImageVolume(ctx context.Context, sb *Sandbox, img *image.Image, uids, gids []specs.LinuxIDMapping) (string, error) {
	target := filepath.Join(imageVolumesDir(sb.Dir), img.ID.Encoded())
	if mounted, err := mountinfo.Mounted(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	} else if mounted {
		return target, nil
	}
	// The directory first: a pod's stop finds what to clean up from it.
	if err := os.MkdirAll(target, 0o700); err != nil {
		return "", err
	}
	if _, err := r.client.LeasesService().Create(ctx, leases.WithID(imageVolumeLease(sb.ID))); err != nil && !errdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("lease for the pod's image volumes: %w", err)
	}
	ctx = leases.WithLease(ctx, imageVolumeLease(sb.ID))
	// Idmapped for a user-namespaced pod, as its containers' root file systems are.
	key := imageVolumeKey(sb.ID, img.ID.Encoded())
	sn := r.client.SnapshotService(snapshotter)
	mounts, err := r.snapshotOfImage(ctx, sn.View, key, img, uids, gids)
	if errdefs.IsAlreadyExists(err) {
		// Left by a mount that failed, or by a berthd that stopped half-way.
		mounts, err = sn.Mounts(ctx, key)
	}
	if err != nil {
		return "", fmt.Errorf("view of image %s: %w", img.ID, err)
	}
	if err := mount.All(mounts, target); err != nil {
		return "", fmt.Errorf("mount image %s at %s: %w", img.ID, target, err)
	}
	return target, nil
}

// imageSubPath is the directory or file sub names in the image mounted at root, its symlinks
// resolved inside root. It must exist.
func imageSubPath(root, sub string) (string, error) {
	p, err := securejoin.SecureJoin(root, sub)
	if err != nil {
		return "", fmt.Errorf("%q: %w", sub, err)
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%q does not exist in the image: %w", sub, errdefs.ErrNotFound)
	} else if err != nil {
		return "", fmt.Errorf("%q: %w", sub, err)
	}
	return p, nil
}

// unmountImageVolumes unmounts a pod's image volumes and removes their snapshots and lease.
// A pod that never had one costs a directory lookup. Idempotent.
func (r *Runtime) unmountImageVolumes(ctx context.Context, sb *Sandbox) error {
	dir := imageVolumesDir(sb.Dir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sn := r.client.SnapshotService(snapshotter)
	for _, e := range entries {
		target := filepath.Join(dir, e.Name())
		if err := mount.UnmountAll(target, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount image volume %s: %w", target, err)
		}
		if err := sn.Remove(ctx, imageVolumeKey(sb.ID, e.Name())); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove image volume snapshot of pod %s: %w", sb.ID, err)
		}
	}
	if err := r.client.LeasesService().Delete(ctx, leases.Lease{ID: imageVolumeLease(sb.ID)}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove the lease of pod %s's image volumes: %w", sb.ID, err)
	}
	return os.RemoveAll(dir)
}
