package runtime

import (
	"testing"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestValidateUserns(t *testing.T) {
	one := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 1000, Length: 100000}}
	for _, test := range []struct {
		name string
		opts *runtimeapi.UserNamespace
		want func(error) bool
	}{
		{"none", nil, nil},
		{"node", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, nil},
		{"node with mappings", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: one, Gids: one}, errdefs.IsInvalidArgument},
		{"container", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, errdefs.IsInvalidArgument},
		{"target", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, errdefs.IsInvalidArgument},
		{"pod, two mappings", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: append(one, &runtimeapi.IDMapping{ContainerId: 0, HostId: 2000, Length: 100000}), Gids: one}, errdefs.IsInvalidArgument},
		{"pod, no gid mapping", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one}, errdefs.IsInvalidArgument},
		{"pod, 0 not mapped", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{ContainerId: 1, HostId: 1000, Length: 100000}}, Gids: one}, errdefs.IsInvalidArgument},
		{"pod, valid", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one, Gids: one}, errdefs.IsNotImplemented},
	} {
		t.Run(test.name, func(t *testing.T) {
			err := validateUserns(test.opts)
			switch {
			case test.want == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case test.want != nil && !test.want(err):
				t.Errorf("error %v, want another kind", err)
			}
		})
	}
}
