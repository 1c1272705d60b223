package e2e

import (
	"os"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// A node whose /run is mounted noexec (Debian's initramfs mounts it so; found by make vm-test):
// a pod that shares its PID namespace still gets its infra process, whose root file system is
// under berth's root, not its state.
func TestInfraProcessWithANoexecState(t *testing.T) {
	d, err := daemon.NewDirs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Cleanup)
	if err := os.MkdirAll(d.State, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", d.State, "tmpfs", syscall.MS_NOEXEC|syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	_, hosts := serveImages(t, nil)
	if err := d.Run("--registry-config-dir", hosts, "--cni-conf-dir", podNetwork(t)); err != nil {
		t.Fatal(err)
	}
	cfg := podConfig("noexec")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	if _, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg}); err != nil {
		t.Fatalf("a shared-PID pod with berth's state on a noexec mount: %v", err)
	}
}
