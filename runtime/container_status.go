package runtime

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/spec"
)

// Container returns the container id (or a unique prefix of it) names.
func (r *Runtime) Container(ctx context.Context, id string) (ContainerView, error) {
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return ContainerView{}, err
	}
	return c.view(), nil
}

// Containers returns every container, oldest first.
func (r *Runtime) Containers(ctx context.Context) ([]ContainerView, error) {
	if err := r.waitLoaded(ctx); err != nil {
		return nil, err
	}
	all := r.containers.list("")
	out := make([]ContainerView, len(all))
	for i, c := range all {
		out[i] = c.view()
	}
	return out, nil
}

// ContainerSpec returns the OCI spec a container runs with, for a verbose ContainerStatus.
func (r *Runtime) ContainerSpec(ctx context.Context, id string) (*specs.Spec, error) {
	container, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return container.Spec(ctx)
}

// UpdateContainerResources changes a container's resources, live when it runs, and records them
// so that a later start uses them.
func (r *Runtime) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error {
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State.State == ContainerExited {
		return fmt.Errorf("container %s has exited: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	container, err := r.client.LoadContainer(ctx, c.ID)
	if err != nil {
		return err
	}
	s, err := container.Spec(ctx)
	if err != nil {
		return err
	}
	dropped, err := spec.ApplyResources(r.settings, s, res)
	if err != nil {
		return err
	}
	if dropped {
		r.log.Debug("hugepage limits left out: the node has no hugetlb cgroup controller", "container", c.ID)
	}
	if c.State.State == ContainerRunning {
		task, err := container.Task(ctx, nil)
		if err != nil {
			return err
		}
		if err := task.Update(ctx, containerd.WithResources(s.Linux.Resources)); err != nil {
			return fmt.Errorf("update resources of container %s: %w", c.ID, err)
		}
	}
	if err := container.Update(ctx, func(_ context.Context, _ *containerd.Client, rec *containers.Container) error {
		specAny, err := typeurl.MarshalAny(s)
		rec.Spec = specAny
		return err
	}); err != nil {
		return err
	}
	c.Resources = spec.AppliedResources(s)
	c.publish()
	return r.saveContainer(ctx, c)
}

// ReopenContainerLog reopens a running container's log file, after the kubelet rotated it.
func (r *Runtime) ReopenContainerLog(ctx context.Context, id string) error {
	c, err := r.loadedContainer(ctx, id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.State.State != ContainerRunning || c.log == nil {
		return fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	return c.log.Reopen()
}
