package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-runtime/berth/checkpoint"
	"github.com/berth-runtime/berth/image"
)

// RestoreOptions say which checkpoints CreateContainer and RestorePod may restore. A checkpoint
// is a process's whole state, made elsewhere: restoring one is off unless the operator turns it
// on, as CRI-O's default is checkpoint-only and containerd has deprecated restores in
// CreateContainer.
type RestoreOptions struct {
	// Enabled lets a container be created from a checkpoint: an OCI image made from a
	// checkpoint archive (annotated io.kubernetes.cri-o.annotations.checkpoint.name or
	// org.criu.checkpoint.container.name), or an archive in ArchiveDirs.
	Enabled bool
	// ArchiveDirs are the directories whose checkpoint archives a CreateContainer may name by
	// path as its image. None: archives are not restored by path. (Any pod can name any path:
	// a directory listed here is one whose checkpoints every pod may restore.)
	ArchiveDirs []string
}

// checkpointImageAnnotations mark an OCI image made from a checkpoint archive: CRI-O's (what
// its buildah recipe sets) and checkpointctl's.
var checkpointImageAnnotations = []string{"io.kubernetes.cri-o.annotations.checkpoint.name", metadata.CheckpointAnnotationName}

// restoreSource is a checkpoint being restored into a new container: unpacked in dir, what it
// says about itself, and the image its root file system was made from.
type restoreSource struct {
	dir  string
	meta *checkpoint.Container
	base *image.Image
	// sameProcess requires the new container's command, arguments and working directory to
	// be the checkpointed process's (RestorePod's contract).
	sameProcess bool
}

// close removes the unpacked checkpoint.
func (s *restoreSource) close() { os.RemoveAll(s.dir) }

// openCheckpoint returns the checkpoint that a CreateContainer whose image is ref restores, or,
// when ref is an ordinary image, that image (nil if the node does not have it). The checkpoint
// is unpacked into berth's own directory (only files and directories, bounded), and its base
// image must already be on the node: a restore pulls nothing and tags nothing, whatever the
// archive names.
func (r *Runtime) openCheckpoint(ctx context.Context, ref string) (*restoreSource, *image.Image, error) {
	var (
		unpack func(dir string) error
		what   string
	)
	if filepath.IsAbs(ref) {
		path, err := r.allowedArchive(ref)
		if err != nil {
			return nil, nil, err
		}
		what = "checkpoint archive " + ref
		unpack = func(dir string) error { return checkpoint.Extract(path, dir, nil, checkpoint.Limits{}) }
	} else {
		img, err := r.images.Lookup(ctx, ref)
		if err != nil {
			return nil, nil, nil // not on the node: CreateContainer says so
		}
		layer, err := checkpointImageLayer(img)
		if err != nil {
			return nil, nil, err
		}
		if layer == nil {
			return nil, img, nil
		}
		if !r.restore.Enabled {
			return nil, nil, fmt.Errorf("image %q is a checkpoint, and restoring checkpoints is off on this node (restore-checkpoints): %w", ref, errdefs.ErrFailedPrecondition)
		}
		what = "checkpoint image " + ref
		unpack = func(dir string) error {
			ra, err := r.client.ContentStore().ReaderAt(ctx, *layer)
			if err != nil {
				return err
			}
			defer ra.Close()
			return checkpoint.ExtractReader(content.NewReader(ra), dir, nil, checkpoint.Limits{})
		}
	}
	src, err := r.unpackCheckpoint(ctx, what, unpack)
	return src, nil, err
}

// unpackCheckpoint unpacks a checkpoint (what names it) with unpack into a working directory
// of berth's, and finds its base image, which must be on the node.
func (r *Runtime) unpackCheckpoint(ctx context.Context, what string, unpack func(dir string) error) (*restoreSource, error) {
	dir, err := r.checkpointWorkDir("restore")
	if err != nil {
		return nil, err
	}
	src := &restoreSource{dir: dir}
	if err := unpack(dir); err != nil {
		src.close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if src.meta, err = checkpoint.ReadMetadata(dir); err != nil {
		src.close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	base := src.meta.Config.RootfsImageRef
	if base == "" {
		src.close()
		return nil, fmt.Errorf("%s names no base image: %w", what, errdefs.ErrInvalidArgument)
	}
	if src.base, err = r.images.Lookup(ctx, base); err != nil {
		src.close()
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%s was made from image %s (%s), which is not on this node; pull it first (a restore pulls nothing): %w",
				what, src.meta.Config.RootfsImageName, base, errdefs.ErrFailedPrecondition)
		}
		return nil, err
	}
	return src, nil
}

// allowedArchive resolves the path of a checkpoint archive that a CreateContainer names, which
// must be a regular file in one of the restore options' ArchiveDirs.
func (r *Runtime) allowedArchive(ref string) (string, error) {
	if !r.restore.Enabled || len(r.restore.ArchiveDirs) == 0 {
		return "", fmt.Errorf("image %q is a path, and restoring checkpoint archives by path is off on this node (restore-checkpoints, checkpoint-archive-dirs): %w", ref, errdefs.ErrFailedPrecondition)
	}
	path, err := filepath.EvalSymlinks(ref)
	if err != nil {
		return "", fmt.Errorf("checkpoint archive %q: %w", ref, errdefs.ErrNotFound)
	}
	for _, d := range r.restore.ArchiveDirs {
		dir, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(dir, path); err == nil && filepath.IsLocal(rel) {
			fi, err := os.Stat(path)
			if err != nil || !fi.Mode().IsRegular() {
				return "", fmt.Errorf("checkpoint archive %q is not a regular file: %w", ref, errdefs.ErrInvalidArgument)
			}
			return path, nil
		}
	}
	return "", fmt.Errorf("checkpoint archive %q is not in a directory of checkpoint-archive-dirs: %w", ref, errdefs.ErrPermissionDenied)
}

// checkpointImageLayer returns the layer of img that holds a checkpoint archive's files when
// img is a checkpoint image (annotated so, on its manifest or its index), nil when it is an
// ordinary image. A checkpoint image has exactly one layer.
func checkpointImageLayer(img *image.Image) (*ocispec.Descriptor, error) {
	for _, a := range checkpointImageAnnotations {
		if img.Annotations[a] == "" {
			continue
		}
		if len(img.Layers) != 1 {
			return nil, fmt.Errorf("checkpoint image %s has %d layers, not one: %w", img.ID, len(img.Layers), errdefs.ErrInvalidArgument)
		}
		return &img.Layers[0], nil
	}
	return nil, nil
}

// restoreFiles puts the checkpoint's files in place for container id, made from it: its root
// file system's changes applied to the container's writable layer (mounts), the CRIU images
// moved to the container's restore directory, after they were checked against spec, and its log
// so far copied to logPath (when the container has a log).
func (r *Runtime) restoreFiles(ctx context.Context, src *restoreSource, id string, mounts []mount.Mount, spec *specs.Spec, logPath string) error {
	if src.sameProcess {
		if err := sameProcess(src.meta.Spec.Process, spec.Process); err != nil {
			return err
		}
	}
	if err := checkpoint.CheckProcesses(src.dir, allowedBy(spec)); err != nil {
		return err
	}
	if f, err := checkpoint.OpenFile(src.dir, checkpoint.RootfsDiff); err == nil {
		err = mount.WithTempMount(ctx, mounts, func(root string) error {
			layer, err := compression.DecompressStream(f)
			if err != nil {
				return err
			}
			defer layer.Close()
			_, err = archive.Apply(ctx, root, layer)
			return err
		})
		f.Close()
		if err != nil {
			return fmt.Errorf("apply the checkpoint's root file system changes: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(r.restoreDir(id)), 0o700); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(src.dir, checkpoint.ImagesDir), r.restoreDir(id)); err != nil {
		return fmt.Errorf("checkpoint images: %w", err)
	}
	if logPath != "" {
		if f, err := checkpoint.OpenFile(src.dir, checkpoint.ContainerLog); err == nil {
			defer f.Close()
			if err := copyToNewFile(f, logPath); err != nil {
				return fmt.Errorf("restore the container's log: %w", err)
			}
		}
	}
	return nil
}

// sameProcess says how the process a container config describes differs from the
// checkpointed one, nil when it does not.
func sameProcess(checkpointed, requested *specs.Process) error {
	if checkpointed == nil || requested == nil {
		return fmt.Errorf("the checkpoint's spec has no process: %w", errdefs.ErrInvalidArgument)
	}
	if !slices.Equal(checkpointed.Args, requested.Args) {
		return fmt.Errorf("the container runs %q, the checkpointed process ran %q: %w", requested.Args, checkpointed.Args, errdefs.ErrInvalidArgument)
	}
	if checkpointed.Cwd != requested.Cwd {
		return fmt.Errorf("the container's working directory is %q, the checkpointed process's %q: %w", requested.Cwd, checkpointed.Cwd, errdefs.ErrInvalidArgument)
	}
	return nil
}

// allowedBy is what a container made with spec may hold (see checkpoint.Allowed).
func allowedBy(spec *specs.Spec) checkpoint.Allowed {
	a := checkpoint.Allowed{}
	if p := spec.Process; p != nil {
		a.UID = p.User.UID
		a.GIDs = append([]uint32{p.User.GID}, p.User.AdditionalGids...)
		a.NoNewPrivileges = p.NoNewPrivileges
		if p.Capabilities != nil {
			names := map[string]bool{}
			for _, n := range p.Capabilities.Bounding {
				names[n] = true
			}
			for i := 0; i < 64; i++ {
				if n := cap.FromNumber(i); n != "" && names[n] {
					a.Capabilities |= 1 << i
				}
			}
		}
	}
	a.Seccomp = spec.Linux != nil && spec.Linux.Seccomp != nil
	return a
}

// restoreDir holds the CRIU images a restored container starts from until it has started;
// restoreWorkDir, CRIU's log and working files of that start.
func (r *Runtime) restoreDir(id string) string { return filepath.Join(r.dataDir(), "restore", id) }
func (r *Runtime) restoreWorkDir(id string) string {
	return filepath.Join(r.dataDir(), "restore", id+".work")
}

// removeRestoreFiles removes what restoring container id needed.
func (r *Runtime) removeRestoreFiles(id string) {
	for _, d := range []string{r.restoreDir(id), r.restoreWorkDir(id)} {
		if err := os.RemoveAll(d); err != nil {
			r.log.Warn("cannot remove a restored container's checkpoint files", "container", id, "dir", d, "error", err)
		}
	}
}

// copyToNewFile copies r into path, which must not exist yet (no link followed).
func copyToNewFile(r io.Reader, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// removeOrphanedCheckpointFiles removes what a killed berthd left of checkpoints and restores:
// every working directory (Load runs before any call, so none is in use) and the restore files
// of containers that are gone or need them no more.
func (r *Runtime) removeOrphanedCheckpointFiles() {
	os.RemoveAll(filepath.Join(r.dataDir(), "checkpoints"))
	entries, _ := os.ReadDir(filepath.Join(r.dataDir(), "restore"))
	for _, e := range entries {
		id := strings.TrimSuffix(e.Name(), ".work")
		if c, err := r.containers.get(id); err == nil && c.Restore {
			continue
		}
		r.log.Info("removing the checkpoint files of a restore that is over", "container", id)
		os.RemoveAll(filepath.Join(r.dataDir(), "restore", e.Name()))
	}
}
