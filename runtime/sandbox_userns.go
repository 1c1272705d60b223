package runtime

import (
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// validateUserns checks a pod's user namespace options. The node's user namespace (mode NODE,
// or no options) is what berth runs pods in. A user namespace of the pod's own (mode POD) is
// checked as the kubelet's other runtimes check it, and then refused: berth does not create pod
// user namespaces yet, and says so in its Status (RuntimeHandlerFeatures.user_namespaces false),
// which is what the kubelet reads before it asks for one.
func validateUserns(opts *runtimeapi.UserNamespace) error {
	const field = "config.linux.security_context.namespace_options.userns_options"
	if opts == nil {
		return nil // POD is the enum's zero value: no options means the node's, as the kubelet means it
	}
	switch opts.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(opts.GetUids()) > 0 || len(opts.GetGids()) > 0 {
			return fmt.Errorf("%s: mode NODE takes no uid or gid mappings: %w", field, errdefs.ErrInvalidArgument)
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
		for _, m := range []struct {
			name     string
			mappings []*runtimeapi.IDMapping
		}{{"uids", opts.GetUids()}, {"gids", opts.GetGids()}} {
			if len(m.mappings) != 1 {
				return fmt.Errorf("%s.%s: mode POD needs exactly one mapping, got %d: %w", field, m.name, len(m.mappings), errdefs.ErrInvalidArgument)
			}
			if mp := m.mappings[0]; mp.GetContainerId() != 0 || mp.GetLength() == 0 {
				return fmt.Errorf("%s.%s: the mapping must start at container id 0 and be non-empty, got %d-%d: %w",
					field, m.name, mp.GetContainerId(), int64(mp.GetContainerId())+int64(mp.GetLength())-1, errdefs.ErrInvalidArgument)
			}
		}
		return fmt.Errorf("%s: mode POD (a user namespace of the pod's own) is not supported by berth: %w", field, errdefs.ErrNotImplemented)
	default:
		return fmt.Errorf("%s.mode: %s is not valid for a pod (NODE or POD): %w", field, opts.GetMode(), errdefs.ErrInvalidArgument)
	}
}
