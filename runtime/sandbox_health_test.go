package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodGone(t *testing.T) {
	pin := "/proc/self/ns/net" // a namespace, as a pin is
	unmounted := filepath.Join(t.TempDir(), "net")
	if err := os.WriteFile(unmounted, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	// A live process that is not berth-pause stands for a pid the kernel gave away.
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	cfg := &runtimeapi.PodSandboxConfig{}
	tests := []struct {
		desc   string
		v      SandboxView
		shared bool
		gone   bool
	}{
		{desc: "pins there, no shared PID namespace", v: SandboxView{Config: cfg, NetNS: pin}},
		{desc: "a pin gone", v: SandboxView{Config: cfg, NetNS: pin, IPC: unmounted + "-ipc"}, gone: true},
		// berthd killed between the pin file's creation and its bind mount (the soak).
		{desc: "a pin file with no namespace on it", v: SandboxView{Config: cfg, NetNS: unmounted}, gone: true},
		{desc: "host namespaces: nothing to lose", v: SandboxView{Config: cfg}},
		{desc: "shared PID without an infra process", v: SandboxView{Config: cfg}, shared: true, gone: true},
		{desc: "infra pid given to another program", v: SandboxView{Config: cfg, InfraPid: uint32(other.Process.Pid)}, shared: true, gone: true},
		{desc: "infra pid of no process", v: SandboxView{Config: cfg, InfraPid: 1 << 30}, shared: true, gone: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if err := podGone(test.v, test.shared); (err != nil) != test.gone {
				t.Errorf("podGone = %v, want gone %v", err, test.gone)
			}
		})
	}
}
