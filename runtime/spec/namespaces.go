package spec

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// namespaceOptions are the container's own, else its pod's.
func namespaceOptions(in Input) *runtimeapi.NamespaceOption {
	if o := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(); o != nil {
		return o
	}
	return in.Sandbox.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
}

// withNamespaces joins the pod's network, IPC and UTS namespaces by path (or the node's), and
// puts the process in a PID namespace of its own, the pod's (its infra process's), the node's or
// another container's.
func withNamespaces(in Input) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		join := func(typ specs.LinuxNamespaceType, path string) error {
			if path == "" {
				return oci.WithHostNamespace(typ)(ctx, c, ctr, s)
			}
			return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: typ, Path: path})(ctx, c, ctr, s)
		}
		for _, ns := range []struct {
			typ  specs.LinuxNamespaceType
			path string
		}{{specs.NetworkNamespace, in.Sandbox.NetNS}, {specs.IPCNamespace, in.Sandbox.IPC}, {specs.UTSNamespace, in.Sandbox.UTS}} {
			if err := join(ns.typ, ns.path); err != nil {
				return err
			}
		}
		if in.Sandbox.Userns != "" {
			// The pod's user namespace, and its mappings, which runc checks against it.
			if err := join(specs.UserNamespace, in.Sandbox.Userns); err != nil {
				return err
			}
			s.Linux.UIDMappings, s.Linux.GIDMappings = in.Sandbox.UIDMappings, in.Sandbox.GIDMappings
		}
		switch namespaceOptions(in).GetPid() {
		case runtimeapi.NamespaceMode_POD:
			if in.Sandbox.InfraPid == 0 {
				return fmt.Errorf("pod %s shares its PID namespace but has no infra process: %w", in.Sandbox.ID, errdefs.ErrFailedPrecondition)
			}
			return join(specs.PIDNamespace, filepath.Join("/proc", fmt.Sprint(in.Sandbox.InfraPid), "ns", "pid"))
		case runtimeapi.NamespaceMode_NODE:
			return join(specs.PIDNamespace, "")
		case runtimeapi.NamespaceMode_TARGET:
			if in.TargetPid == 0 {
				return fmt.Errorf("security_context.namespace_options.target_id: the target container is not running: %w", errdefs.ErrFailedPrecondition)
			}
			return join(specs.PIDNamespace, filepath.Join("/proc", fmt.Sprint(in.TargetPid), "ns", "pid"))
		}
		return nil // CONTAINER: the default spec's new PID namespace
	}
}
