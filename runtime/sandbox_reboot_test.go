package runtime

import (
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/typeurl/v2"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A pod recorded before the node rebooted loads NOTREADY with no infra pid (the pid may be
// another process's now, whose PID namespace a new container would join); one of this boot,
// or recorded before berth kept boot ids, loads as recorded.
func TestSandboxFromAnEarlierBootIsNotReady(t *testing.T) {
	for _, test := range []struct {
		recorded, now string
		want          string
		wantPid       uint32
	}{
		{"boot-1", "boot-2", SandboxNotReady, 0},
		{"boot-2", "boot-2", SandboxReady, 42},
		{"", "boot-2", SandboxReady, 42},
	} {
		sb := &Sandbox{ID: "pod1", Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p"}},
			State: SandboxReady, InfraPid: 42, BootID: test.recorded}
		ext, err := sb.extension()
		if err != nil {
			t.Fatal(err)
		}
		r := &Runtime{bootID: test.now, stateDir: t.TempDir()}
		got, err := r.loadSandbox(containers.Container{ID: "pod1", Extensions: map[string]typeurl.Any{sandboxExtension: ext}})
		if err != nil {
			t.Fatal(err)
		}
		if got.State != test.want || got.InfraPid != test.wantPid || got.rebooted != (test.want == SandboxNotReady) {
			t.Errorf("recorded in %q, loaded in %q: %s, infra pid %d, rebooted %v; want %s, %d",
				test.recorded, test.now, got.State, got.InfraPid, got.rebooted, test.want, test.wantPid)
		}
		if got.BootID != test.recorded {
			t.Errorf("boot id %q after the load, want the record's %q", got.BootID, test.recorded)
		}
	}
}
