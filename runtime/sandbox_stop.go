package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/namespace"
)

// StopPodSandbox stops a pod: it unwires its network (CNI DEL, retried) and unpins its
// namespaces. Per the CRI (api.proto) it is idempotent: stopping a stopped pod, or one that does
// not exist, is not an error.
func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	sb, err := r.loadedSandbox(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.removed {
		return nil
	}
	return r.stopLocked(ctx, sb)
}

// stopLocked does the work of StopPodSandbox with sb.mu held.
func (r *Runtime) stopLocked(ctx context.Context, sb *Sandbox) error {
	// The pod's containers are killed: per the CRI, StopPodSandbox forcibly terminates them.
	for _, c := range r.containers.list(sb.ID) {
		if err := r.stopContainer(ctx, c, 0); err != nil {
			return fmt.Errorf("stop pod sandbox %s: %w", sb.ID, err)
		}
	}
	if sharesPID(sb.Config) {
		if err := r.stopInfra(ctx, sb.ID); err != nil {
			return err
		}
	}
	r.releaseShim(ctx, sb, false)
	if err := r.teardownNetwork(ctx, sb); err != nil {
		return err
	}
	if err := namespace.Unpin(filepath.Join(sb.Dir, "ns")); err != nil {
		return fmt.Errorf("pod sandbox %s: %w", sb.ID, err)
	}
	if err := unmountPodShm(sb.Dir); err != nil {
		return fmt.Errorf("pod sandbox %s: %w", sb.ID, err)
	}
	if err := r.unmountImageVolumes(ctx, sb); err != nil {
		return fmt.Errorf("pod sandbox %s: %w", sb.ID, err)
	}
	if sb.State == SandboxNotReady {
		return nil
	}
	sb.State = SandboxNotReady
	sb.publish()
	r.emit(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, sb.ID, sb)
	return r.saveRecord(ctx, sb)
}

// teardownNetwork runs CNI DEL for a pod until it succeeds (plugins can fail for a moment, say
// while iptables is locked), up to a few tries.
func (r *Runtime) teardownNetwork(ctx context.Context, sb *Sandbox) error {
	if hostNetwork(sb.Config) {
		return nil
	}
	network := ""
	if sb.Network != nil {
		network = sb.Network.Network
	}
	pod := cniPod(sb)
	if pod.NetNS != "" && namespace.Pinned(pod.NetNS) != nil {
		// Gone (a reboot), or never pinned (berthd died as it pinned it): DEL with no namespace,
		// as the CNI spec has runtimes do, releases the pod's address and host-side state.
		pod.NetNS = ""
	}
	var err error
	for try, delay := 0, 100*time.Millisecond; try < 3; try, delay = try+1, delay*4 {
		if err = r.network.Teardown(ctx, pod, network); err == nil {
			return nil
		}
		r.log.Warn("CNI DEL failed; retrying", "sandbox", sb.ID, "try", try+1, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(delay):
		}
	}
	return err
}

// RemovePodSandbox removes a pod, stopping it first if it runs: its files, namespaces and
// containerd record go, and its name is free again. Per the CRI (api.proto) removing a pod that
// does not exist is not an error.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	sb, err := r.loadedSandbox(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.removed {
		return nil
	}
	if err := r.stopLocked(ctx, sb); err != nil {
		return err
	}
	for _, c := range r.containers.list(sb.ID) {
		if err := r.removeContainer(ctx, c); err != nil {
			return fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
		}
	}
	r.releaseShim(ctx, sb, true)
	sb.closeShimLog()
	r.removePodCgroups(ctx, sb)
	for _, dir := range []string{r.podFilesDir(sb), sb.Dir} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove pod sandbox %s files: %w", sb.ID, err)
		}
	}
	if err := r.deleteRecord(ctx, sb.ID); err != nil {
		return err
	}
	sb.removed = true
	r.sandboxes.remove(sb)
	r.stats.forget("pod:" + sb.ID)
	r.emit(runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, sb.ID, sb)
	return nil
}
