package runtime

import (
	"fmt"
	"math"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/namespace"
)

const usernsField = "config.linux.security_context.namespace_options.userns_options"

// validateUserns checks a pod's user namespace options. The node's user namespace (mode NODE, or
// no options) needs no mappings; a user namespace of the pod's own (mode POD) needs exactly one
// uid and one gid mapping, each starting at container id 0, non-empty and within the 32-bit id
// space (the kubelet gives every pod 65536 ids of its own). supported says whether the node can
// run such pods (HandlerFeatures); a valid mode POD on a node that cannot is ErrNotImplemented.
func validateUserns(opts *runtimeapi.UserNamespace, supported bool) error {
	if opts == nil {
		return nil // POD is the enum's zero value: no options means the node's, as the kubelet means it
	}
	switch opts.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(opts.GetUids()) > 0 || len(opts.GetGids()) > 0 {
			return fmt.Errorf("%s: mode NODE takes no uid or gid mappings: %w", usernsField, errdefs.ErrInvalidArgument)
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
		for _, m := range []struct {
			name     string
			mappings []*runtimeapi.IDMapping
		}{{"uids", opts.GetUids()}, {"gids", opts.GetGids()}} {
			if len(m.mappings) != 1 {
				return fmt.Errorf("%s.%s: mode POD needs exactly one mapping, got %d: %w", usernsField, m.name, len(m.mappings), errdefs.ErrInvalidArgument)
			}
			mp := m.mappings[0]
			if mp.GetContainerId() != 0 || mp.GetLength() == 0 {
				return fmt.Errorf("%s.%s: the mapping must start at container id 0 and be non-empty, got container ids %d-%d: %w",
					usernsField, m.name, mp.GetContainerId(), int64(mp.GetContainerId())+int64(mp.GetLength())-1, errdefs.ErrInvalidArgument)
			}
			if uint64(mp.GetHostId())+uint64(mp.GetLength()) > math.MaxUint32 {
				return fmt.Errorf("%s.%s: host ids %d-%d run past the id space: %w",
					usernsField, m.name, mp.GetHostId(), uint64(mp.GetHostId())+uint64(mp.GetLength())-1, errdefs.ErrInvalidArgument)
			}
			if mp.GetHostId() == 0 {
				return fmt.Errorf("%s.%s: host id 0 (the node's root) cannot be mapped into a pod: %w", usernsField, m.name, errdefs.ErrInvalidArgument)
			}
		}
		if !supported {
			return fmt.Errorf("%s: mode POD: this node cannot run pods in user namespaces of their own (see the runtime handler's user_namespaces feature): %w",
				usernsField, errdefs.ErrNotImplemented)
		}
		return nil
	default:
		return fmt.Errorf("%s.mode: %s is not valid for a pod (NODE or POD): %w", usernsField, opts.GetMode(), errdefs.ErrInvalidArgument)
	}
}

// podUserns returns the uid and gid mappings of a pod with a user namespace of its own, and
// false for a pod in the node's. The config must have been validated.
func podUserns(cfg *runtimeapi.PodSandboxConfig) (uids, gids []specs.LinuxIDMapping, ok bool) {
	opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if opts.GetMode() != runtimeapi.NamespaceMode_POD || len(opts.GetUids()) == 0 {
		return nil, nil, false
	}
	conv := func(ms []*runtimeapi.IDMapping) []specs.LinuxIDMapping {
		out := make([]specs.LinuxIDMapping, len(ms))
		for i, m := range ms {
			out[i] = specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
		}
		return out
	}
	return conv(opts.GetUids()), conv(opts.GetGids()), true
}

// namespaceIDMaps converts mappings for package namespace.
func namespaceIDMaps(ms []specs.LinuxIDMapping) []namespace.IDMap {
	out := make([]namespace.IDMap, len(ms))
	for i, m := range ms {
		out[i] = namespace.IDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size}
	}
	return out
}
