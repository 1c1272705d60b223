package runtime

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/checkpoint"
)

// RestoredContainer is a container RestorePod made: its name in the pod, and its id.
type RestoredContainer struct {
	Name, ID string
}

// CheckpointPod writes a checkpoint of the running containers ids of ready pod podID into
// output, an existing empty directory the caller owns (see package checkpoint for its layout),
// with statuses, their CRI statuses by id. Every container is frozen before any is captured and
// all stay frozen until all are, so the pod's processes are of one moment; all are thawed
// before it returns, whatever happened. On failure nothing is left in output. berth takes no
// options.
func (r *Runtime) CheckpointPod(ctx context.Context, podID, output string, ids []string, statuses map[string]*runtimeapi.ContainerStatus, options map[string]string) (retErr error) {
	if len(options) > 0 {
		return fmt.Errorf("options: berth takes none, got %q: %w", slices.Sorted(maps.Keys(options)), errdefs.ErrInvalidArgument)
	}
	if err := emptyDir(output); err != nil {
		return err
	}
	if len(ids) == 0 {
		return fmt.Errorf("container_ids: empty: %w", errdefs.ErrInvalidArgument)
	}
	sb, err := r.readySandbox(ctx, podID)
	if err != nil {
		return err
	}
	if err := r.criuAvailable(); err != nil {
		return fmt.Errorf("checkpoint pod %s: %w", podID, err)
	}
	var cs []*Container
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			return fmt.Errorf("container_ids: %s twice: %w", id, errdefs.ErrInvalidArgument)
		}
		seen[id] = true
		c, err := r.containers.get(id)
		if err != nil {
			return err
		}
		if c.SandboxID != podID {
			return fmt.Errorf("container_ids: container %s is not in pod %s: %w", id, podID, errdefs.ErrInvalidArgument)
		}
		if err := containerDirName(c.Config.GetMetadata().GetName()); err != nil {
			return err
		}
		cs = append(cs, c)
	}
	// Locked in one order, so that two checkpoints of one pod cannot deadlock.
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	for _, c := range cs {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.State.State != ContainerRunning {
			return fmt.Errorf("container %s is %s; only running containers can be checkpointed: %w", c.ID, c.State.State, errdefs.ErrFailedPrecondition)
		}
	}
	steps := stepTimer{start: time.Now()}
	work, err := r.checkpointWorkDir(podID)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	defer func() {
		if retErr != nil {
			clearDir(output)
		}
	}()
	ctx, done, err := r.client.WithLease(ctx, createContainerLease()...)
	if err != nil {
		return err
	}
	defer done(context.WithoutCancel(ctx))

	var thaws []func()
	defer func() {
		for _, thaw := range thaws {
			thaw()
		}
	}()
	records := make([]containerd.Container, len(cs))
	for i, c := range cs {
		container, thaw, err := r.freeze(ctx, c)
		if err != nil {
			return err
		}
		records[i] = container
		thaws = append(thaws, thaw)
	}
	steps.mark("freeze")
	pod := &checkpoint.Pod{
		Options: metadata.CheckpointedPodOptions{Version: checkpoint.PodVersion, Containers: map[string]string{}},
		Dump:    checkpoint.PodDumpInfo{Config: sb.view().Config, RuntimeHandler: sb.RuntimeHandler},
	}
	for i, c := range cs {
		name := c.Config.GetMetadata().GetName()
		dir := filepath.Join(output, checkpoint.ContainersDir, name)
		if err := r.dumpContainer(ctx, c, records[i], statuses[c.ID], dir, filepath.Join(work, c.ID), &steps); err != nil {
			return err
		}
		pod.Options.Containers[name] = c.ID
	}
	if err := checkpoint.WritePod(output, pod); err != nil {
		return err
	}
	r.log.Info("pod checkpointed", "sandbox", podID, "containers", len(cs), "dir", output, "steps", steps.String())
	return ctx.Err()
}

// RestorePod makes a pod from cfg and handler and, in it, each container of the pod checkpoint
// in dir from its config in configs (matched by name; the names must be the checkpoint's),
// ready for StartContainer to restore. Each container's command, arguments and working
// directory must be the checkpointed process's, and its processes within what its config gives
// (see restoreFiles). On failure the pod and its containers are removed. dir is not modified.
func (r *Runtime) RestorePod(ctx context.Context, dir string, cfg *runtimeapi.PodSandboxConfig, handler string, options map[string]string,
	configs []*runtimeapi.ContainerConfig) (podID string, restored []RestoredContainer, retErr error) {
	if len(options) > 0 {
		return "", nil, fmt.Errorf("options: berth takes none, got %q: %w", slices.Sorted(maps.Keys(options)), errdefs.ErrInvalidArgument)
	}
	if !r.restore.Enabled {
		return "", nil, fmt.Errorf("restoring checkpoints is off on this node (restore-checkpoints): %w", errdefs.ErrFailedPrecondition)
	}
	if !filepath.IsAbs(dir) {
		return "", nil, fmt.Errorf("checkpoint_path: %q is not an absolute path: %w", dir, errdefs.ErrInvalidArgument)
	}
	pod, err := checkpoint.ReadPod(dir)
	if err != nil {
		return "", nil, err
	}
	if len(configs) == 0 {
		return "", nil, fmt.Errorf("container_configs: empty: %w", errdefs.ErrInvalidArgument)
	}
	byName := map[string]*runtimeapi.ContainerConfig{}
	for i, c := range configs {
		if err := validateContainerConfig(c); err != nil {
			return "", nil, fmt.Errorf("container_configs[%d]: %w", i, err)
		}
		if err := containerDirName(c.GetMetadata().GetName()); err != nil {
			return "", nil, fmt.Errorf("container_configs[%d]: %w", i, err)
		}
		if byName[c.GetMetadata().GetName()] != nil {
			return "", nil, fmt.Errorf("container_configs: %q twice: %w", c.GetMetadata().GetName(), errdefs.ErrInvalidArgument)
		}
		byName[c.GetMetadata().GetName()] = c
	}
	if want, got := slices.Sorted(maps.Keys(pod.Options.Containers)), slices.Sorted(maps.Keys(byName)); !slices.Equal(want, got) {
		return "", nil, fmt.Errorf("container_configs: containers %q, the checkpoint holds %q: %w",
			strings.Join(got, ","), strings.Join(want, ","), errdefs.ErrInvalidArgument)
	}
	if err := r.criuAvailable(); err != nil {
		return "", nil, fmt.Errorf("restore pod: %w", err)
	}
	// Every container's checkpoint copied into berth's own directory first (the caller's is
	// not to be changed, and is read once, without links).
	sources := map[string]*restoreSource{}
	defer func() {
		for _, s := range sources {
			s.close()
		}
	}()
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		src := filepath.Join(dir, checkpoint.ContainersDir, name)
		s, err := r.unpackCheckpoint(ctx, "pod checkpoint "+dir+": container "+name, func(d string) error {
			return checkpoint.CopyTree(src, d, checkpoint.Limits{})
		})
		if err != nil {
			return "", nil, err
		}
		s.sameProcess = true
		sources[name] = s
		base, err := r.images.Lookup(ctx, byName[name].GetImage().GetImage())
		if err != nil || base.ID != s.base.ID {
			return "", nil, fmt.Errorf("container %s: image %q is not the image %s the checkpointed container ran (%s): %w",
				name, byName[name].GetImage().GetImage(), s.meta.Config.RootfsImageName, s.base.ID, errdefs.ErrInvalidArgument)
		}
	}

	id, err := r.RunPodSandbox(ctx, cfg, handler)
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if retErr == nil {
			return
		}
		podID := id // the named result is cleared by the failed return
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		err := r.StopPodSandbox(ctx, podID)
		if err == nil {
			err = r.RemovePodSandbox(ctx, podID)
		}
		if err != nil {
			r.log.Error("a failed pod restore left its pod behind", "sandbox", podID, "error", err)
		}
	}()
	for _, c := range configs {
		name := c.GetMetadata().GetName()
		cid, err := r.createContainer(ctx, &stepTimer{start: time.Now()}, id, c, sources[name].base, sources[name])
		if err != nil {
			return "", nil, fmt.Errorf("container %s: %w", name, err)
		}
		restored = append(restored, RestoredContainer{Name: name, ID: cid})
	}
	r.log.Info("pod restored", "sandbox", id, "containers", len(restored), "checkpoint", dir)
	return id, restored, nil
}

// containerDirName checks that a container's name can name its directory in a pod checkpoint:
// one path element, not "." or "..".
func containerDirName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("container name %q cannot name a directory of a pod checkpoint: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// emptyDir checks that dir is an absolute path to an existing, empty directory.
func emptyDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("output_path: %q is not an absolute path: %w", dir, errdefs.ErrInvalidArgument)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("output_path: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if len(entries) > 0 {
		return fmt.Errorf("output_path: %s is not empty: %w", dir, errdefs.ErrInvalidArgument)
	}
	return nil
}

// clearDir removes what is in dir, leaving dir.
func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
