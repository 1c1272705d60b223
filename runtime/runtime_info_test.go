package runtime

import (
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
)

// The runc shim is told the handler's executable and, with the systemd driver, to make systemd
// scopes: without SystemdCgroup runc took "slice:berth:id" for a directory name.
func TestRuntimeInfo(t *testing.T) {
	tests := []struct {
		handler, driver string
		want            *runcoptions.Options // nil: no options
	}{
		{"", "cgroupfs", nil},
		{"runc", "cgroupfs", nil},
		{"logged", "cgroupfs", &runcoptions.Options{BinaryName: "/usr/local/bin/logged-runc"}},
		{"", "systemd", &runcoptions.Options{SystemdCgroup: true}},
		{"runc", "systemd", &runcoptions.Options{SystemdCgroup: true}},
		{"logged", "systemd", &runcoptions.Options{BinaryName: "/usr/local/bin/logged-runc", SystemdCgroup: true}},
	}
	for _, test := range tests {
		r := &Runtime{cgroupDriver: test.driver, handlers: map[string]string{"logged": "/usr/local/bin/logged-runc"}}
		info, err := r.runtimeInfo(test.handler)
		if err != nil {
			t.Fatalf("runtimeInfo(%q) with %s: %v", test.handler, test.driver, err)
		}
		if info.Name != runcRuntime {
			t.Errorf("runtime %q, want %q", info.Name, runcRuntime)
		}
		if test.want == nil {
			if info.Options != nil {
				t.Errorf("handler %q with %s: options %v, want none", test.handler, test.driver, info.Options)
			}
			continue
		}
		v, err := typeurl.UnmarshalAny(info.Options)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := v.(*runcoptions.Options)
		if !ok || got.BinaryName != test.want.BinaryName || got.SystemdCgroup != test.want.SystemdCgroup {
			t.Errorf("handler %q with %s: options %v, want %v", test.handler, test.driver, v, test.want)
		}
	}
	r := &Runtime{cgroupDriver: "systemd"}
	if _, err := r.runtimeInfo("missing"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("an unknown handler: %v, want InvalidArgument", err)
	}
}
