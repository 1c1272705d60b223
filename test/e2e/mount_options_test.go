package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A mount's mount_options (the kubelet's bindMountOptions, when Status says mount_options):
// noexec on a volume stops what is in it from running.
func TestBindMountOptions(t *testing.T) {
	e := newContainerEnv(t, "mount-options")
	st, err := e.d.Runtime.Status(ctx(t), &runtimeapi.StatusRequest{})
	if err != nil || !st.GetFeatures().GetMountOptions() {
		t.Fatalf("Status features %v (%v): want mount_options", st.GetFeatures(), err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	id := e.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		c.Mounts = []*runtimeapi.Mount{
			{HostPath: dir, ContainerPath: "/plain"},
			{HostPath: dir, ContainerPath: "/noexec", MountOptions: []string{"noexec", "nodev", "nosuid"}},
		}
	})
	if out := e.exec(t, id, "/plain/hello"); out != "ran\n" {
		t.Errorf("/plain/hello: %q", out)
	}
	resp, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"/noexec/hello"}, Timeout: 10})
	if err == nil && resp.ExitCode == 0 {
		t.Errorf("/noexec/hello ran from a noexec mount: %s", resp.Stdout)
	}
	if out := e.exec(t, id, "grep", " /noexec ", "/proc/self/mountinfo"); !strings.Contains(out, "nosuid") || !strings.Contains(out, "nodev") || !strings.Contains(out, "noexec") {
		t.Errorf("/noexec's mount: %s", out)
	}
}
