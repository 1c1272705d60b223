package spec

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// CDIRegistry resolves Container Device Interface device names ("vendor.com/class=name") and
// applies their edits (device nodes, mounts, environment, hooks) to a spec. The CDI library's
// *cdi.Cache is one; it returns the names it could not resolve with its error.
type CDIRegistry interface {
	InjectDevices(s *specs.Spec, devices ...string) ([]string, error)
}

// cdiDevices are the CDI devices a config asks for: its CDI_devices (how the kubelet passes
// those of device plugins and DRA drivers), then those of its cdi.k8s.io/ annotations (the older
// way), each once.
func cdiDevices(in Input) ([]string, error) {
	var names []string
	for _, d := range in.Config.GetCDIDevices() {
		if !slices.Contains(names, d.GetName()) {
			names = append(names, d.GetName())
		}
	}
	_, annotated, err := cdi.ParseAnnotations(in.Config.GetAnnotations())
	if err != nil {
		return nil, fmt.Errorf("annotations: CDI devices: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	for _, n := range annotated {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// withCDIDevices applies the config's CDI devices, after everything else: their edits add
// devices, mounts, environment and hooks that nothing may reset. A device that no CDI spec on
// the node describes is InvalidArgument naming it.
func withCDIDevices(in Input) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		names, err := cdiDevices(in)
		if err != nil || len(names) == 0 {
			return err
		}
		if in.Settings.CDI == nil {
			return fmt.Errorf("CDI devices %v: CDI is not enabled on this node (cdi-spec-dirs is empty): %w", names, errdefs.ErrInvalidArgument)
		}
		if unresolved, err := in.Settings.CDI.InjectDevices(s, names...); err != nil {
			if len(unresolved) > 0 {
				return fmt.Errorf("CDI devices %v: no CDI spec on this node describes them: %w", unresolved, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("CDI devices %v: %v: %w", names, err, errdefs.ErrInvalidArgument)
		}
		return nil
	}
}
