package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/pkg/rootfs"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/checkpoint"
)

// CheckpointContainer writes a checkpoint of running container id to the archive at location
// (a tar in the layout the kubelet and checkpointctl read, see package checkpoint): CRIU's images
// of its processes, its root file system's changes, its spec, its CRI status (status, as the
// caller describes it) and its log so far. The container is frozen while its processes and
// files are captured and keeps running afterwards. timeout (0: none but ctx's) bounds the whole
// checkpoint; past it, or on any failure, no archive is left at location.
func (r *Runtime) CheckpointContainer(ctx context.Context, id, location string, status *runtimeapi.ContainerStatus, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Dir(location)); err != nil || !fi.IsDir() {
		return fmt.Errorf("location: %s is not a directory: %w", filepath.Dir(location), errdefs.ErrInvalidArgument)
	}
	if err := r.criuAvailable(); err != nil {
		return fmt.Errorf("checkpoint container %s: %w", id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State.State != ContainerRunning {
		return fmt.Errorf("container %s is %s; only a running container can be checkpointed: %w", id, c.State.State, errdefs.ErrFailedPrecondition)
	}
	steps := stepTimer{start: time.Now()}
	work, err := r.checkpointWorkDir(id)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ctx, done, err := r.client.WithLease(ctx, createContainerLease()...)
	if err != nil {
		return err
	}
	defer done(context.WithoutCancel(ctx))

	container, thaw, err := r.freeze(ctx, c)
	if err != nil {
		return err
	}
	dir := filepath.Join(work, "archive")
	err = r.dumpContainer(ctx, c, container, status, dir, filepath.Join(work, "criu"), &steps)
	thaw()
	if err != nil {
		return err
	}
	if err := checkpoint.Write(location, dir); err != nil {
		return err
	}
	steps.mark("archive")
	r.log.Info("container checkpointed", "container", id, "archive", location, "steps", steps.String())
	return ctx.Err()
}

// freeze pauses running container c (container is its containerd record), from before CRIU's dump until its root file system's
// changes are read, so that its files and its memory are of one moment. thaw resumes it,
// whatever happened meanwhile.
func (r *Runtime) freeze(ctx context.Context, c *Container) (container containerd.Container, thaw func(), err error) {
	if container, err = r.client.LoadContainer(ctx, c.ID); err != nil {
		return nil, nil, err
	}
	task, err := container.Task(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s has no task: %w", c.ID, err)
	}
	if err := task.Pause(ctx); err != nil {
		return nil, nil, fmt.Errorf("freeze container %s: %w", c.ID, err)
	}
	return container, func() {
		if err := task.Resume(context.WithoutCancel(ctx)); err != nil {
			r.log.Error("cannot thaw a container after its checkpoint", "container", c.ID, "error", err)
		}
	}, nil
}

// dumpContainer writes the checkpoint of frozen container c (container: its containerd record)
// into dir, in the archive's layout, with CRIU working in criuWork.
func (r *Runtime) dumpContainer(ctx context.Context, c *Container, container containerd.Container, status *runtimeapi.ContainerStatus,
	dir, criuWork string, steps *stepTimer) error {
	if err := os.MkdirAll(filepath.Join(dir, checkpoint.ImagesDir), 0o700); err != nil {
		return err
	}
	info, err := container.Info(ctx)
	if err != nil {
		return err
	}
	opts, err := typeurl.MarshalAnyToProto(&options.CheckpointOptions{
		Exit: false, WorkPath: criuWork, ImagePath: filepath.Join(dir, checkpoint.ImagesDir), Terminal: c.Config.GetTty(),
	})
	if err != nil {
		return err
	}
	if _, err := r.client.TaskService().Checkpoint(ctx, &tasks.CheckpointTaskRequest{ContainerID: c.ID, Options: opts}); err != nil {
		return fmt.Errorf("checkpoint container %s: %w%s", c.ID, errgrpc.ToNative(err), criuLogTail(criuWork, checkpoint.DumpLog))
	}
	steps.mark("criu")
	if err := r.writeRootfsDiff(ctx, info.SnapshotKey, filepath.Join(dir, checkpoint.RootfsDiff)); err != nil {
		return fmt.Errorf("checkpoint the root file system of container %s: %w", c.ID, err)
	}
	steps.mark("rootfs")
	for _, name := range []string{checkpoint.DumpLog, "stats-dump"} {
		copyRegular(filepath.Join(criuWork, name), filepath.Join(dir, name))
	}
	if c.LogPath != "" {
		copyRegular(c.LogPath, filepath.Join(dir, checkpoint.ContainerLog))
	}
	spec, err := container.Spec(ctx)
	if err != nil {
		return err
	}
	md := &checkpoint.Container{
		Config: metadata.ContainerConfig{
			ID: c.ID, Name: c.Config.GetMetadata().GetName(), RootfsImage: c.ImageName, RootfsImageRef: c.ImageRef,
			RootfsImageName: c.ImageName, OCIRuntime: info.Runtime.Name, CreatedTime: c.State.CreatedAt, CheckpointedAt: time.Now(),
		},
		Spec: *spec, Status: status,
	}
	if md.Status == nil {
		md.Status = &runtimeapi.ContainerStatus{Id: c.ID, Metadata: c.Config.GetMetadata()}
	}
	return checkpoint.WriteMetadata(dir, md)
}

// writeRootfsDiff writes the changes of the container's writable layer (snapshot key) over its
// image as an uncompressed OCI layer to path.
func (r *Runtime) writeRootfsDiff(ctx context.Context, key, path string) error {
	desc, err := rootfs.CreateDiff(ctx, key, r.client.SnapshotService(snapshotter), r.client.DiffService(),
		diff.WithMediaType(ocispec.MediaTypeImageLayer))
	if err != nil {
		return err
	}
	ra, err := r.client.ContentStore().ReaderAt(ctx, desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, content.NewReader(ra)); err != nil {
		f.Close()
		return err
	}
	// The layer was only needed for this copy; the lease let it be collected afterwards.
	if err := r.client.ContentStore().Delete(ctx, desc.Digest); err != nil && !errdefs.IsNotFound(err) {
		r.log.Debug("cannot delete a checkpoint's layer from the content store", "digest", desc.Digest, "error", err)
	}
	return f.Close()
}

// checkpointWorkDir makes a fresh working directory for a checkpoint or restore of container
// id, under berth's root (not its state: /run is memory, and a checkpoint holds a container's
// whole memory).
func (r *Runtime) checkpointWorkDir(id string) (string, error) {
	base := filepath.Join(r.dataDir(), "checkpoints")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, id+"-")
}

// dataDir is berth's root directory, or its state directory when it has none.
func (r *Runtime) dataDir() string {
	if r.rootDir != "" {
		return r.rootDir
	}
	return r.stateDir
}

// copyRegular copies src to dst, a new file, when src is a regular file; anything else is left
// out.
func copyRegular(src, dst string) {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer in.Close()
	if fi, err := in.Stat(); err == nil && fi.Mode().IsRegular() {
		copyToNewFile(in, dst)
	}
}

// criuAvailable says why runc cannot checkpoint or restore here, nil when it can. The message
// starts as containerd's does, which the kubelet's e2e suite recognises.
func (r *Runtime) criuAvailable() error {
	if fi, err := os.Stat(r.criu); r.criu == "" || err != nil || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("CRIU binary not found or too old (<31600): berth looks for criu beside the shim and on its PATH (make criu installs it): %w", errdefs.ErrFailedPrecondition)
	}
	return nil
}

// criuLogTail names why a dump or restore failed from CRIU's log in dir: its error lines (the
// first few), else its last lines.
func criuLogTail(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || len(b) == 0 {
		return ""
	}
	var errs []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Error (") && !strings.Contains(line, "RLIMIT_NOFILE") {
			if errs = append(errs, strings.TrimSpace(line)); len(errs) == 5 {
				break
			}
		}
	}
	if len(errs) > 0 {
		return "; CRIU's log (" + filepath.Join(dir, name) + "): " + strings.Join(errs, "; ")
	}
	if len(b) > 1024 {
		b = b[len(b)-1024:]
	}
	return "; CRIU's log ends: " + string(b)
}
