package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/spec"
)

// groupAnnotation makes the runc shim run every task of a pod in one shim process (the runc v2
// shim groups tasks by it): one shim per pod, not one per container.
const groupAnnotation = spec.GroupAnnotation

// sharesPID reports whether the pod's containers share one PID namespace, which then needs an
// infra process to hold it (PID 1 of the pod) for the pod's lifetime.
func sharesPID(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_POD
}

// pauseRootfs makes (once) the read-only root of infra processes: berth-pause as /pause and the
// mount points runc needs.
func (r *Runtime) pauseRootfs() (string, error) {
	dir := r.pauseRootfsDir
	if dir == "" {
		dir = filepath.Join(r.stateDir, "pause-rootfs")
	}
	want, err := os.ReadFile(r.pauseBinary)
	if err != nil {
		return "", fmt.Errorf("read berth-pause (%s): %w", r.pauseBinary, err)
	}
	if have, err := os.ReadFile(filepath.Join(dir, "pause")); err == nil && bytes.Equal(have, want) {
		return dir, nil
	}
	for _, d := range []string{"proc", "dev", "sys", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	tmp := filepath.Join(dir, ".pause.tmp")
	if err := os.WriteFile(tmp, want, 0o755); err != nil {
		return "", err
	}
	return dir, os.Rename(tmp, filepath.Join(dir, "pause"))
}

// startInfra runs berth-pause as PID 1 of a new PID namespace in the pod's other namespaces, and
// records its spec in the sandbox's containerd record. It returns the infra process's pid.
func (r *Runtime) startInfra(ctx context.Context, sb *Sandbox) (uint32, error) {
	rootfs, err := r.pauseRootfs()
	if err != nil {
		return 0, err
	}
	opts := []oci.SpecOpts{
		oci.WithDefaultSpec(),
		oci.WithRootFSPath(rootfs),
		oci.WithRootFSReadonly(),
		oci.WithProcessArgs("/pause"),
		oci.WithProcessCwd("/"),
		oci.WithCapabilities(nil),
		oci.WithNoNewPrivileges,
		oci.WithCgroup(spec.CgroupsPath(sb.Config.GetLinux().GetCgroupParent(), sb.ID, r.cgroupDriver)),
		oci.WithAnnotations(map[string]string{groupAnnotation: sb.ID}),
		withPodNamespace(specs.NetworkNamespace, sb.NetNS),
		withPodNamespace(specs.IPCNamespace, sb.IPC),
		withPodNamespace(specs.UTSNamespace, sb.UTS),
	}
	if uids, gids, ok := podUserns(sb.Config); ok {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UserNamespace, Path: sb.Userns}),
			func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux.UIDMappings, s.Linux.GIDMappings = uids, gids
				return nil
			})
	}
	c := &containers.Container{ID: sb.ID}
	infraSpec, err := oci.GenerateSpec(namespaces.WithNamespace(ctx, Namespace), r.client, c, opts...)
	if err != nil {
		return 0, fmt.Errorf("infra process spec: %w", err)
	}
	// Without an IPC namespace of its own the pod cannot mount a message-queue file system.
	if sb.IPC == "" {
		infraSpec.Mounts = dropMount(infraSpec.Mounts, "/dev/mqueue")
	}
	anySpec, err := typeurl.MarshalAny(infraSpec)
	if err != nil {
		return 0, err
	}
	if _, err := r.client.ContainerService().Update(ctx, containers.Container{ID: sb.ID, Spec: anySpec}, "spec"); err != nil {
		return 0, fmt.Errorf("record infra process spec: %w", err)
	}
	container, err := r.client.LoadContainer(ctx, sb.ID)
	if err != nil {
		return 0, err
	}
	task, err := r.newTask(ctx, sb, container, cio.NullIO)
	if err != nil {
		return 0, fmt.Errorf("create infra process: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
		return 0, fmt.Errorf("start infra process: %w", err)
	}
	return task.Pid(), nil
}

// stopInfra kills the pod's infra process, if it has one, and deletes its task.
func (r *Runtime) stopInfra(ctx context.Context, id string) error {
	container, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	task, err := container.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("infra process of pod sandbox %s: %w", id, err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill infra process of pod sandbox %s: %w", id, err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("infra process of pod sandbox %s did not die after SIGKILL", id)
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete infra process of pod sandbox %s: %w", id, err)
	}
	return nil
}

// withPodNamespace joins the namespace pinned at path, or the host's when path is empty.
func withPodNamespace(typ specs.LinuxNamespaceType, path string) oci.SpecOpts {
	if path == "" {
		return oci.WithHostNamespace(typ)
	}
	return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: typ, Path: path})
}

func dropMount(mounts []specs.Mount, dest string) []specs.Mount {
	out := mounts[:0]
	for _, m := range mounts {
		if !strings.HasPrefix(m.Destination, dest) {
			out = append(out, m)
		}
	}
	return out
}
