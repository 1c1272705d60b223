package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostTraces counts what pods leave on the host: network interfaces, pinned namespaces, IP
// reservations, iptables rules, berth's cgroups and pod directories.
type hostTraces struct {
	links, pins, ips, iptables, cgroups, podDirs int
	// mounts under berthd's state, shims of its containerd, files under its containers' dirs,
	// shim sockets (runc shims make them in one host-wide directory).
	mounts, shims, ctrFiles, shimSockets int
	// shimCmds are the command lines of those shims, to say which they are.
	shimCmds string
}

func countTraces(t *testing.T, stateDir string) hostTraces {
	t.Helper()
	var h hostTraces
	if out, err := exec.Command("ip", "-o", "link").Output(); err == nil {
		h.links = strings.Count(string(out), "\n")
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		h.pins = strings.Count(string(mounts), "nsfs")
	}
	if entries, err := os.ReadDir(filepath.Join("/var/lib/cni/networks", e2eNetwork)); err == nil {
		for _, e := range entries {
			if strings.Count(e.Name(), ".") == 3 {
				h.ips++
			}
		}
	}
	if out, err := exec.Command("iptables-save").Output(); err == nil {
		h.iptables = strings.Count(string(out), "\n-A ")
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/berth/*/")
	h.cgroups = len(cg)
	dirs, _ := os.ReadDir(filepath.Join(stateDir, "pods"))
	h.podDirs = len(dirs)
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		h.mounts = strings.Count(string(mounts), stateDir)
	}
	h.shimCmds = shimsOf(stateDir)
	h.shims = strings.Count(h.shimCmds, "\n")
	if sockets, err := os.ReadDir("/run/containerd/s"); err == nil {
		h.shimSockets = len(sockets)
	}
	filepath.WalkDir(filepath.Join(stateDir, "containers"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			h.ctrFiles++
		}
		return nil
	})
	return h
}

// settledTraces counts the host's traces until they are back to want, for up to 30 seconds: a
// shim that is told to exit removes its socket first, then gives its shutdown up to 5 seconds
// (pkg/shim) before its process is gone; with 50 pods removed at once on 2 cores the last
// shims were seen to take about 10.
func settledTraces(t *testing.T, stateDir string, want hostTraces) hostTraces {
	deadline := time.Now().Add(30 * time.Second)
	for {
		h := countTraces(t, stateDir)
		if h == want || time.Now().After(deadline) {
			return h
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shimsOf lists the command lines of the shims of the containerd under stateDir.
func shimsOf(stateDir string) string {
	var b strings.Builder
	for _, pid := range processesWith("containerd-shim") {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), stateDir) {
			fmt.Fprintf(&b, "%d: %s\n", pid, strings.ReplaceAll(strings.TrimSpace(string(cmd)), "\x00", " "))
		}
	}
	return b.String()
}

// TestPodCyclesLeaveNothingBehind runs 200 pods through run, stop and remove, one in ten with a
// CNI plugin that fails its ADD and one in four with an infra process, and checks that the host
// is as it was before.
func TestPodCyclesLeaveNothingBehind(t *testing.T) {
	binDir := t.TempDir()
	// Fails ADD for pods named fail-*; passes everything else through unchanged.
	// libcni hands a chained plugin its config as compact JSON with sorted keys, so the previous
	// result is what stands between "prevResult": and the closing "type".
	script := `#!/bin/sh
input=$(cat)
case "$CNI_ARGS" in *K8S_POD_NAME=fail-*) [ "$CNI_COMMAND" = ADD ] && { echo '{"code":100,"msg":"injected failure"}'; exit 1; } ;; esac
[ "$CNI_COMMAND" = ADD ] && echo "$input" | sed 's/.*"prevResult":\(.*\),"type":"flaky"}$/\1/'
exit 0
`
	if err := os.WriteFile(filepath.Join(binDir, "flaky"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	confDir := podNetwork(t, `{"type": "flaky"}`)
	d := startDaemon(t, "--cni-conf-dir", confDir, "--cni-bin-dirs", "/opt/cni/bin,"+binDir)

	// One pod first, so that the bridge and its rules (which stay) exist before the count.
	warm := runPod(t, d, podConfig("warm"))
	d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: warm})
	before := countTraces(t, d.State)

	const cycles = 200
	var run, stop, remove time.Duration
	failures := 0
	for i := range cycles {
		name := fmt.Sprintf("cycle-%d", i)
		if i%10 == 9 {
			name = fmt.Sprintf("fail-%d", i)
		}
		cfg := podConfig(name)
		if i%4 == 3 {
			cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		}
		start := time.Now()
		resp, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		run += time.Since(start)
		if strings.HasPrefix(name, "fail-") {
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("pod %s: RunPodSandbox = %v, want the injected failure", name, err)
			}
			failures++
			continue
		}
		if err != nil {
			t.Fatalf("pod %s: %v", name, err)
		}
		start = time.Now()
		if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			t.Fatalf("pod %s: StopPodSandbox: %v", name, err)
		}
		stop += time.Since(start)
		start = time.Now()
		if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			t.Fatalf("pod %s: RemovePodSandbox: %v", name, err)
		}
		remove += time.Since(start)
	}
	after := settledTraces(t, d.State, before)
	if after != before {
		t.Errorf("after %d cycles the host holds %+v, before %+v", cycles, after, before)
	}
	assertNoPods(t, d)
	ok := cycles - failures
	t.Logf("%d pods (%d with an infra process, %d failed ADDs rolled back): RunPodSandbox %v avg, StopPodSandbox %v avg, RemovePodSandbox %v avg",
		cycles, cycles/4, failures, run/time.Duration(cycles), stop/time.Duration(ok), remove/time.Duration(ok))
}

// TestLoadRoundsLeaveNothingBehind: 50 pods with a container each, created and removed
// concurrently while ExecSync probes run against them, 10 rounds; every call succeeds and the
// host is as clean afterwards as before.
func TestLoadRoundsLeaveNothingBehind(t *testing.T) {
	e := newContainerEnv(t, "load-warm") // a berthd with the image and the network in place
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	before := countTraces(t, e.d.State)
	const pods, rounds = 50, 10
	var probes atomic.Int64
	for round := range rounds {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, pods)
		for i := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- loadPod(t, e, fmt.Sprintf("load-%d-%d", round, i), &probes)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		t.Logf("round %d: %d pods created, probed and removed in %v", round, pods, time.Since(start).Round(time.Millisecond))
	}
	after := settledTraces(t, e.d.State, before)
	if after != before {
		t.Errorf("after %d rounds of %d pods the host holds %+v, before %+v", rounds, pods, after, before)
	}
	assertNoPods(t, e.d)
	t.Logf("%d ExecSync probes answered", probes.Load())
}

// loadPod runs a pod with one container, probes it with ExecSync until three probes passed,
// then removes it.
func loadPod(t *testing.T, e *containerEnv, name string, probes *atomic.Int64) error {
	cfg := podConfig(name)
	cfg.LogDirectory = e.logDir
	resp, err := e.d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return fmt.Errorf("%s: RunPodSandbox: %w", name, err)
	}
	pod := resp.PodSandboxId
	c, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: busyboxRef},
		Command: []string{"sleep", "3600"}, LogPath: name + ".log",
	}})
	if err != nil {
		return fmt.Errorf("%s: CreateContainer: %w", name, err)
	}
	if _, err := e.d.Runtime.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return fmt.Errorf("%s: StartContainer: %w", name, err)
	}
	for range 3 {
		r, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId, Cmd: []string{"cat", "/etc/hostname"}, Timeout: 10})
		if err != nil || r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != name {
			return fmt.Errorf("%s: probe: %v %v", name, r, err)
		}
		probes.Add(1)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		return fmt.Errorf("%s: StopPodSandbox: %w", name, err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		return fmt.Errorf("%s: RemovePodSandbox: %w", name, err)
	}
	return nil
}
