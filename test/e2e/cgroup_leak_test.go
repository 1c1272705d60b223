package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cgroupsUnder lists the cgroups (directories) path names, a glob pattern, in every cgroup
// hierarchy of the node.
func cgroupsUnder(path string) []string {
	v1, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", path))
	v2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", path))
	var dirs []string
	for _, m := range append(v1, v2...) {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			dirs = append(dirs, m)
		}
	}
	return dirs
}

// kill -9 of berthd while runc create runs, cut off after runc made the container's cgroups
// and before it saved its state (the soak's case: containerd logs "container not created"):
// nothing records those cgroups, and the pod's cgroup parent, non-empty, was left too. After the
// restart, removing the pod removes both, in every hierarchy. The runtime handler's runc is a
// script that does what the cut-off runc did, once, then waits to be killed.
func TestRuncCutOffInStartLeavesNoCgroup(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "cut-off")
	wrapper := filepath.Join(dir, "cutoff-runc")
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
  case "$prev" in --bundle) bundle=$a;; esac
  prev=$a
done
if [ -n "$bundle" ] && [ ! -e %[1]s ] && grep -q CUT_OFF=1 "$bundle/config.json"; then
  cg=$(sed -n 's/.*"cgroupsPath":"\([^"]*\)".*/\1/p' "$bundle/config.json")
  for h in /sys/fs/cgroup/*/; do mkdir -p "$h$cg"; done
  touch %[1]s
  exec sleep 3601
fi
exec %[2]s "$@"
`, marker, tool(t, "runc"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	removeCgroupTree("berth-e2e/cutoff") // what a failed run left would make the parent the kubelet's
	t.Cleanup(func() { removeCgroupTree("berth-e2e/cutoff") })
	d := busyboxDaemon(t, "--runtime-handler", "cutoff="+wrapper)
	cfg := podConfig("cutoff")
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.CgroupParent = "/berth-e2e/cutoff"
	resp, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "cutoff"})
	if err != nil {
		t.Fatal(err)
	}
	e := &containerEnv{d: d, pod: resp.PodSandboxId, podCfg: cfg, logDir: cfg.LogDirectory}
	id := e.create(t, "cut", func(c *runtimeapi.ContainerConfig) {
		c.Envs = []*runtimeapi.KeyValue{{Key: "CUT_OFF", Value: []byte("1")}}
	})
	errc := make(chan error, 1)
	go func() {
		_, err := d.Runtime.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id})
		errc <- err
	}()
	waitFor(t, "runc create to be cut off", func() bool { _, err := os.Stat(marker); return err == nil })
	if err := d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, pid := range processesWith("sleep 3601") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := <-errc; err == nil {
		t.Fatal("StartContainer succeeded although berthd was killed during it")
	}
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	if left := cgroupsUnder(filepath.Join("berth-e2e/cutoff", id)); len(left) == 0 {
		t.Fatal("the cut-off runc made no cgroup: the test shows nothing")
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	if left := cgroupsUnder("berth-e2e/cutoff"); len(left) > 0 {
		t.Errorf("cgroups left after the pod was removed: %v", left)
	}
}

// removeCgroupTree removes the cgroup path and those below it in every hierarchy, deepest first.
func removeCgroupTree(path string) {
	for depth := 4; depth >= 0; depth-- {
		for _, d := range cgroupsUnder(path + strings.Repeat("/*", depth)) {
			syscall.Rmdir(d)
		}
	}
}

// A pod's cgroup parent that was there before the pod (the kubelet makes it, with the pod's
// limits) stays when the pod is removed, as with containerd; one that was not goes with the pod.
func TestPodCgroupParentRemovedOnlyWhenBerthMadeIt(t *testing.T) {
	d := busyboxDaemon(t)
	for _, p := range []string{"berth-e2e/kubelets-pod", "berth-e2e/berths-pod", "berth-e2e/shared"} {
		removeCgroupTree(p)
		t.Cleanup(func() { removeCgroupTree(p) })
	}
	made := cgroupsUnder("memory")
	if len(made) == 0 {
		made = []string{"/sys/fs/cgroup"}
	}
	kubelets := filepath.Join(made[0], "berth-e2e", "kubelets-pod")
	if err := os.MkdirAll(kubelets, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, test := range []struct {
		parent string
		kept   bool
	}{{"/berth-e2e/kubelets-pod", true}, {"/berth-e2e/berths-pod", false}} {
		cfg := podConfig("parent")
		cfg.LogDirectory = t.TempDir()
		cfg.Linux.CgroupParent = test.parent
		e := runPodEnv(t, d, cfg)
		e.run(t, "app", nil)
		if len(cgroupsUnder(test.parent)) == 0 {
			t.Fatalf("no cgroup %s while the pod runs", test.parent)
		}
		if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
			t.Fatal(err)
		}
		left := cgroupsUnder(test.parent)
		switch {
		case test.kept && len(left) == 0:
			t.Errorf("the kubelet's pod cgroup %s was removed with the pod", test.parent)
		case test.kept:
			if children := cgroupsUnder(filepath.Join(test.parent, "*")); len(children) > 0 {
				t.Errorf("container cgroups left in the kubelet's pod cgroup: %v", children)
			}
		case len(left) > 0:
			t.Errorf("the pod cgroup berth made is left: %v", left)
		}
	}

	// Two pods of one parent that berth made: it goes with the last, whichever came first.
	var pods []*containerEnv
	for range 2 {
		cfg := podConfig("shared")
		cfg.LogDirectory = t.TempDir()
		cfg.Linux.CgroupParent = "/berth-e2e/shared"
		e := runPodEnv(t, d, cfg)
		e.run(t, "app", nil)
		pods = append(pods, e)
	}
	for i, e := range pods {
		if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
			t.Fatal(err)
		}
		left := cgroupsUnder("berth-e2e/shared")
		if i == 0 && len(left) == 0 {
			t.Error("the shared parent went with the first of its two pods")
		}
		if i == 1 && len(left) > 0 {
			t.Errorf("the shared parent berth made is left after its last pod: %v", left)
		}
	}
}
