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
		{"pod, size 0", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 1000, Length: 0}}, Gids: one}, errdefs.IsInvalidArgument},
		{"pod, past the id space", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: one, Gids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 4294967000, Length: 65536}}}, errdefs.IsInvalidArgument},
		{"pod, the node's root mapped", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 0, Length: 65536}}, Gids: one}, errdefs.IsInvalidArgument},
		{"pod, valid", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one, Gids: one}, nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			err := validateUserns(test.opts, true)
			switch {
			case test.want == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case test.want != nil && !test.want(err):
				t.Errorf("error %v, want another kind", err)
			}
		})
	}
}

func TestValidateUsernsOnANodeWithout(t *testing.T) {
	one := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 1000, Length: 65536}}
	if err := validateUserns(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one, Gids: one}, false); !errdefs.IsNotImplemented(err) {
		t.Errorf("mode POD on a node without user namespace support: %v, want NotImplemented", err)
	}
}
