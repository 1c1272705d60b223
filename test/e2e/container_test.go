package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/image-spec/identity"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// containerEnv is a berthd with the test images and network, and a running pod.
type containerEnv struct {
	d      *daemon.Daemon
	pod    string
	podCfg *runtimeapi.PodSandboxConfig
	logDir string
}

func newContainerEnv(t *testing.T, podName string, berthdArgs ...string) *containerEnv {
	t.Helper()
	removeE2ECgroups(t)
	d := busyboxDaemon(t, berthdArgs...)
	cfg := podConfig(podName)
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.CgroupParent = "/berth-e2e/" + podName
	return runPodEnv(t, d, cfg)
}

// busyboxDaemon starts a berthd on the test's registry and pod network (with extra arguments)
// and pulls busybox into it.
func busyboxDaemon(t *testing.T, berthdArgs ...string) *daemon.Daemon {
	t.Helper()
	_, hosts := serveImages(t, nil)
	d := startDaemon(t, append([]string{"--registry-config-dir", hosts, "--cni-conf-dir", podNetwork(t)}, berthdArgs...)...)
	mustPull(t, d.Image, busyboxRef)
	return d
}

// runPodEnv runs pod cfg on d (in a log directory of its own unless it names one), for
// containers.
func runPodEnv(t *testing.T, d *daemon.Daemon, cfg *runtimeapi.PodSandboxConfig) *containerEnv {
	t.Helper()
	if cfg.LogDirectory == "" {
		cfg.LogDirectory = t.TempDir()
	}
	return &containerEnv{d: d, pod: runPod(t, d, cfg), podCfg: cfg, logDir: cfg.LogDirectory}
}

// removeE2ECgroups removes, when the test ends, the parent of the cgroups of its pods (those
// under /berth-e2e): registered before the daemon starts, it runs after the daemon's cleanup
// has removed the pods, and their cgroups with them.
func removeE2ECgroups(t *testing.T) {
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth-e2e")
		for _, d := range dirs {
			syscall.Rmdir(d)
		}
	})
}

func (e *containerEnv) create(t *testing.T, name string, mutate func(*runtimeapi.ContainerConfig)) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: busyboxRef},
		Command:  []string{"sleep", "3600"},
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
	if mutate != nil {
		mutate(cfg)
	}
	resp, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, Config: cfg, SandboxConfig: e.podCfg})
	if err != nil {
		t.Fatalf("CreateContainer(%s): %v", name, err)
	}
	return resp.ContainerId
}

func (e *containerEnv) start(t *testing.T, id string) {
	t.Helper()
	if _, err := e.d.Runtime.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
}

func (e *containerEnv) run(t *testing.T, name string, mutate func(*runtimeapi.ContainerConfig)) string {
	t.Helper()
	id := e.create(t, name, mutate)
	e.start(t, id)
	return id
}

func (e *containerEnv) status(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return resp.Status
}

func (e *containerEnv) waitExit(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.status(t, id)
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not exit: %v", id, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *containerEnv) exec(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	resp, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		t.Fatalf("ExecSync(%q): %v", cmd, err)
	}
	if resp.ExitCode != 0 {
		t.Fatalf("ExecSync(%q) exit %d: %s", cmd, resp.ExitCode, resp.Stderr)
	}
	return string(resp.Stdout)
}

// logEntries reads a CRI log file as (stream, tag, content) triples.
func logEntries(t *testing.T, path string) [][3]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][3]string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("malformed log line %.100q", s.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Fatalf("bad timestamp in %.100q", s.Text())
		}
		out = append(out, [3]string{parts[1], parts[2], parts[3]})
	}
	return out
}

func TestContainerLogs(t *testing.T) {
	e := newContainerEnv(t, "logs")
	long := strings.Repeat("z", 40000)
	script := fmt.Sprintf("echo out1; echo err1 >&2; printf 'no-newline'; echo; printf '%s\\n'; printf tail", long)
	id := e.run(t, "writer", func(c *runtimeapi.ContainerConfig) { c.Command = []string{"sh", "-c", script} })
	st := e.waitExit(t, id)
	if st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("exit = %d %q, want 0 Completed", st.ExitCode, st.Reason)
	}
	entries := logEntries(t, filepath.Join(e.logDir, "writer.log"))
	var stdout []string
	var joined strings.Builder
	sawErr := false
	for _, en := range entries {
		if en[0] == "stderr" {
			sawErr = sawErr || (en[1] == "F" && en[2] == "err1")
			continue
		}
		joined.WriteString(en[2])
		if en[1] == "F" {
			stdout = append(stdout, joined.String())
			joined.Reset()
		}
	}
	if !sawErr {
		t.Error("stderr line missing")
	}
	if len(stdout) != 3 || stdout[0] != "out1" || stdout[1] != "no-newline" || stdout[2] != long {
		t.Errorf("stdout lines = %.60q", stdout)
	}
	if joined.String() != "tail" {
		t.Errorf("trailing partial line = %q, want tail", joined.String())
	}
	parts := 0
	for _, en := range entries {
		if en[1] == "P" {
			parts++
		}
	}
	if parts < 3 { // the 40 kB line in 16 KiB pieces, and the tail
		t.Errorf("%d partial entries, want the long line split", parts)
	}
}

func TestContainerLogRotation(t *testing.T) {
	e := newContainerEnv(t, "rotate")
	id := e.run(t, "ticker", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done"}
	})
	path := filepath.Join(e.logDir, "ticker.log")
	time.Sleep(500 * time.Millisecond)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.ReopenContainerLog(ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	// No line is lost or duplicated across the two files.
	var nums []int
	for _, p := range []string{path + ".1", path} {
		for _, en := range logEntries(t, p) {
			var n int
			fmt.Sscanf(en[2], "line%d", &n)
			nums = append(nums, n)
		}
	}
	for i, n := range nums {
		if n != i+1 {
			t.Fatalf("lines across rotation: %v", nums)
		}
	}
	if len(logEntries(t, path)) == 0 {
		t.Error("nothing written to the reopened log")
	}
}

func TestContainerSeesItsWorld(t *testing.T) {
	e := newContainerEnv(t, "world")
	id := e.run(t, "inside", func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 33}
		c.Linux.SecurityContext.SupplementalGroups = []int64{4242}
		c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_RAW"}}
		c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 256}
		c.Envs = []*runtimeapi.KeyValue{{Key: "GREETING", Value: []byte("hi")}}
		c.Linux.SecurityContext.MaskedPaths = []string{"/bin/ls"}
		c.Linux.SecurityContext.ReadonlyPaths = []string{"/tmp"}
	})
	// A masked file reads empty and cannot run (named by path: busybox's shell runs a bare
	// "ls" as a built-in applet, which is why critest's MaskedPaths spec is skipped).
	if got := e.exec(t, id, "sh", "-c", "wc -c < /bin/ls; /bin/ls 2>&1; touch /tmp/x 2>&1; true"); !strings.HasPrefix(got, "0\n") ||
		!strings.Contains(got, "/bin/ls: Permission denied") || !strings.Contains(got, "Read-only file system") {
		t.Errorf("masked /bin/ls and read-only /tmp seen from inside: %q", got)
	}
	if got := strings.TrimSpace(e.exec(t, id, "id", "-u")); got != "33" {
		t.Errorf("uid = %q", got)
	}
	if got := e.exec(t, id, "id", "-G"); !strings.Contains(got, "4242") || !strings.Contains(got, "33") {
		t.Errorf("groups = %q, want 33 and 4242", got)
	}
	procStatus := e.exec(t, id, "cat", "/proc/self/status")
	if !strings.Contains(procStatus, "CapBnd:\t0000000000002000") { // CAP_NET_RAW alone
		t.Errorf("capabilities:\n%s", grepLines(procStatus, "Cap"))
	}
	if !strings.Contains(procStatus, "Seccomp:\t2") {
		t.Errorf("seccomp not in filter mode:\n%s", grepLines(procStatus, "Seccomp"))
	}
	if got := strings.TrimSpace(e.exec(t, id, "hostname")); got != "world" {
		t.Errorf("hostname = %q, want the pod's", got)
	}
	if got := e.exec(t, id, "sh", "-c", "echo $GREETING"); got != "hi\n" {
		t.Errorf("env GREETING = %q", got)
	}
	// The limits are in the container's cgroup on the host.
	cg := filepath.Join("/sys/fs/cgroup/memory/berth-e2e/world", id, "memory.limit_in_bytes")
	if b, err := os.ReadFile(cg); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(64<<20) {
		t.Errorf("%s = %q, %v; want %d", cg, b, err, 64<<20)
	}
	// Resources change live.
	if _, err := e.d.Runtime.UpdateContainerResources(ctx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 << 20, CpuShares: 256},
	}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if b, _ := os.ReadFile(cg); strings.TrimSpace(string(b)) != fmt.Sprint(128<<20) {
		t.Errorf("after update %s = %q, want %d", cg, b, 128<<20)
	}
	if st := e.status(t, id); st.GetResources().GetLinux().GetMemoryLimitInBytes() != 128<<20 {
		t.Errorf("status resources = %v", st.GetResources())
	}
}

func TestExitCodesAndReasons(t *testing.T) {
	e := newContainerEnv(t, "exits")
	tests := []struct {
		desc   string
		cmd    string
		code   int32
		reason string
	}{
		{"success", "exit 0", 0, "Completed"},
		{"failure", "exit 3", 3, "Error"},
		// PID 1 of the container ignores signals it has no handler for: exit with a killed child's status.
		{"killed by a signal", "sh -c 'kill -9 $$'; exit $?", 137, "Error"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			id := e.run(t, strings.ReplaceAll(test.desc, " ", "-"), func(c *runtimeapi.ContainerConfig) { c.Command = []string{"sh", "-c", test.cmd} })
			st := e.waitExit(t, id)
			if st.ExitCode != test.code || st.Reason != test.reason || st.FinishedAt < st.StartedAt || st.StartedAt == 0 {
				t.Errorf("status = code %d reason %q started %d finished %d; want %d %q", st.ExitCode, st.Reason, st.StartedAt, st.FinishedAt, test.code, test.reason)
			}
		})
	}
}

func TestOneShimPerPodAndCleanRemoval(t *testing.T) {
	e := newContainerEnv(t, "shim")
	a := e.run(t, "a", nil)
	b := e.run(t, "b", nil)
	shims := 0
	for _, pid := range processesWith("containerd-shim-runc-v2") {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), e.d.State) {
			shims++
		}
	}
	if shims != 1 {
		t.Errorf("%d shims for a pod with an infra process and two containers, want 1", shims)
	}
	// The image is in use: it cannot be removed.
	if _, err := e.d.Image.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: busyboxRef}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("RemoveImage of an image in use = %v, want FailedPrecondition", err)
	}
	// Removing a running container kills it and leaves nothing of it.
	if _, err := e.d.Runtime.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: a}); err != nil {
		t.Fatalf("RemoveContainer(running): %v", err)
	}
	if _, err := e.d.Runtime.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: a}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a removed container = %v, want NotFound", err)
	}
	if _, err := os.Stat(filepath.Join(e.d.State, "containers", a)); !os.IsNotExist(err) {
		t.Errorf("container state dir left: %v", err)
	}
	// Removing the pod removes its other container too, and every process goes.
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	list, _ := e.d.Runtime.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
	if len(list.GetContainers()) != 0 {
		t.Errorf("containers left after the pod was removed: %v", list.Containers)
	}
	if procs := processesWith(b); len(procs) != 0 {
		t.Errorf("processes of container %s left: %v", b, procs)
	}
	if cgs, _ := filepath.Glob("/sys/fs/cgroup/*/berth-e2e/shim"); len(cgs) > 0 {
		t.Errorf("pod cgroups left: %v", cgs)
	}
	assertNoPods(t, e.d)
}

// With shim-prestart a pod's shim starts with the pod (once RunPodSandbox has set the pod up),
// under the pod's id, and the pod's containers run in it; a pod gone, with or without having run
// a container, and even while its shim was still starting, leaves neither its shim nor its shim
// socket.
func TestPodShimStartsWithThePod(t *testing.T) {
	sockets := func() int { e, _ := os.ReadDir("/run/containerd/s"); return len(e) }
	before := sockets()
	e := newContainerEnv(t, "early-shim", "--shim-prestart")
	shimsOf := func(id string) (pod, all int) {
		for _, pid := range processesWith("containerd-shim-runc-v2") {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if strings.Contains(string(cmd), e.d.State) {
				all++
				if strings.Contains(string(cmd), "-id\x00"+id+"\x00") {
					pod++
				}
			}
		}
		return pod, all
	}
	waitFor(t, "the pod's shim", func() bool { pod, _ := shimsOf(e.pod); return pod == 1 })
	if pod, all := shimsOf(e.pod); pod != 1 || all != 1 {
		t.Fatalf("after RunPodSandbox: %d shims of the pod, %d in all; want its own one", pod, all)
	}
	e.run(t, "a", nil)
	e.run(t, "b", nil)
	if pod, all := shimsOf(e.pod); pod != 1 || all != 1 {
		t.Errorf("with two containers: %d shims of the pod, %d in all; want the pod's only", pod, all)
	}
	idle := runPod(t, e.d, podConfig("early-shim-idle"))
	waitFor(t, "the second pod's shim", func() bool { pod, _ := shimsOf(idle); return pod == 1 })
	// Pods removed as soon as they are up: their shims are still starting.
	for i := range 3 {
		id := runPod(t, e.d, podConfig(fmt.Sprintf("early-shim-gone-%d", i)))
		if _, err := e.d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("the shim of pod %d, removed while its shim started, to exit", i), func() bool {
			pod, _ := shimsOf(id)
			return pod == 0
		})
	}
	if pod, all := shimsOf(idle); pod != 1 || all != 2 {
		t.Errorf("with two pods up: %d shims of the idle pod, %d in all; want one each", pod, all)
	}
	for _, id := range []string{e.pod, idle} {
		if _, err := e.d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the shims to exit", func() bool { _, all := shimsOf(e.pod); return all == 0 })
	if after := sockets(); after != before {
		t.Errorf("%d shim sockets in /run/containerd/s after the pods were removed, %d before", after, before)
	}
}

// The containers of a pod share one /dev/shm (a tmpfs of the pod's, as System V IPC is shared
// through the pod's IPC namespace), and the tmpfs goes with the pod.
func TestContainersShareThePodsShm(t *testing.T) {
	e := newContainerEnv(t, "shm")
	a := e.run(t, "a", nil)
	b := e.run(t, "b", nil)
	e.exec(t, a, "sh", "-c", "echo from-a > /dev/shm/note")
	if got := e.exec(t, b, "cat", "/dev/shm/note"); got != "from-a\n" {
		t.Errorf("b reads %q from /dev/shm, want what a wrote", got)
	}
	if got := e.exec(t, b, "sh", "-c", "grep ' /dev/shm ' /proc/mounts"); !strings.Contains(got, "tmpfs") || !strings.Contains(got, "size=65536k") {
		t.Errorf("/dev/shm in the container: %q, want the pod's 64 MiB tmpfs", got)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if left := grepLines(string(mounts), e.d.State); left != "" {
		t.Errorf("mounts under berthd's state left after the pod was removed:\n%s", left)
	}
}

func TestContainersSurviveABerthdRestart(t *testing.T) {
	e := newContainerEnv(t, "restart")
	id := e.run(t, "ticker", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.02; done"}
	})
	exiting := e.run(t, "exiting", func(c *runtimeapi.ContainerConfig) { c.Command = []string{"sh", "-c", "sleep 1; exit 7"} })
	time.Sleep(300 * time.Millisecond)
	if err := e.d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // "exiting" exits while berthd is away
	if err := e.d.Run(); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("running container after restart: %v", st.State)
	}
	if st := e.status(t, exiting); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
		t.Errorf("container that exited while berthd was away: %v exit %d, want EXITED 7", st.State, st.ExitCode)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := e.d.Runtime.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	// Every line is in the log once, in order, across the restart.
	entries := logEntries(t, filepath.Join(e.logDir, "ticker.log"))
	for i, en := range entries {
		if en[2] != fmt.Sprintf("line%d", i+1) {
			t.Fatalf("log entry %d = %q: a line was lost or repeated across the restart", i, en[2])
		}
	}
	if len(entries) < 50 {
		t.Errorf("only %d lines logged", len(entries))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPodShimShutdownDuringACreate: containerd asks a pod's shim to shut down when a task of it
// is deleted, and the shim exits if it has no task left; a container started just as the pod's
// only other one exits (an init container and the next, say) lost its create to that ("ttrpc:
// closed", seen in the node e2e suite's HostPath subPath spec). It now starts.
func TestPodShimShutdownDuringACreate(t *testing.T) {
	d := busyboxDaemon(t)
	for i := range 8 {
		cfg := podConfig(fmt.Sprintf("handover-%d", i))
		cfg.LogDirectory = t.TempDir()
		e := runPodEnv(t, d, cfg)
		first := e.create(t, "first", func(c *runtimeapi.ContainerConfig) { c.Command = []string{"true"} })
		next := e.create(t, "next", nil)
		e.start(t, first)
		e.waitExit(t, first)
		e.start(t, next) // the first's task is being deleted, and its shim told to shut down
		if st := e.status(t, next); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("pod %d: the next container is %v", i, st.State)
		}
	}
}

// TestRemoveContainerAsItExits: RemoveContainer of a container that exits on its own just then,
// the pod's only task, found its shim gone under the SIGKILL (the exit monitor had deleted the
// task and the shim shut down) and failed with "kill container <id>: ttrpc: closed" (critest,
// about one run in seven). The container is removed.
func TestRemoveContainerAsItExits(t *testing.T) {
	d := busyboxDaemon(t)
	for i := range 12 {
		cfg := podConfig(fmt.Sprintf("remove-as-it-exits-%d", i))
		cfg.LogDirectory = t.TempDir()
		e := runPodEnv(t, d, cfg)
		// Exits a little later each time, so that some removal meets the exit.
		id := e.create(t, "brief", func(c *runtimeapi.ContainerConfig) {
			c.Command = []string{"sh", "-c", fmt.Sprintf("usleep %d", i*5000)}
		})
		e.start(t, id)
		if _, err := d.Runtime.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("pod %d: RemoveContainer as the container exits: %v", i, err)
		}
	}
}

// CreateContainer finds its image by every name the image service answers to, and names the
// image it used by id in the container's status, whichever name it was given.
func TestCreateContainerFindsTheImageByAnyName(t *testing.T) {
	e := newContainerEnv(t, "image-names")
	img := imageStatus(t, e.d.Image, busyboxRef)
	if img == nil || len(img.RepoDigests) != 1 {
		t.Fatalf("ImageStatus(%s) = %v, want the image with one repo digest", busyboxRef, img)
	}
	for i, ref := range []string{
		busyboxRef,
		img.Id,
		strings.TrimPrefix(img.Id, "sha256:"),
		img.RepoDigests[0],
	} {
		id := e.create(t, fmt.Sprintf("c%d", i), func(c *runtimeapi.ContainerConfig) { c.Image.Image = ref })
		if got := e.status(t, id).GetImageRef(); got != img.Id {
			t.Errorf("container of image %q: image ref %q, want %q", ref, got, img.Id)
		}
	}
	_, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "missing"}, Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/not-pulled:1"}, Command: []string{"true"}}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("CreateContainer of an image not on the node: %v, want NotFound", err)
	}
}

// An image whose layers are not unpacked (removed behind berth's back, or pulled by another
// client without unpacking) is unpacked by the CreateContainer that needs it.
func TestCreateContainerUnpacksTheImageWhenItIsNot(t *testing.T) {
	e := newContainerEnv(t, "unpack")
	client := containerdClient(t, e.d)
	img, err := client.GetImage(ctx(t), busyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	diffIDs, err := img.RootFS(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	sn := client.SnapshotService("overlayfs")
	for i := len(diffIDs); i > 0; i-- {
		if err := sn.Remove(ctx(t), identity.ChainID(diffIDs[:i]).String()); err != nil {
			t.Fatalf("remove layer snapshot %d of %s: %v", i, busyboxRef, err)
		}
	}
	if ok, err := img.IsUnpacked(ctx(t), "overlayfs"); err != nil || ok {
		t.Fatalf("image unpacked after its snapshots were removed: %v, %v", ok, err)
	}
	id := e.run(t, "app", nil)
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container of the image that was not unpacked: %v, want running", st.State)
	}
	if ok, err := img.IsUnpacked(ctx(t), "overlayfs"); err != nil || !ok {
		t.Errorf("image not unpacked after CreateContainer: %v, %v", ok, err)
	}
}

// StopContainer sends the config's stop_signal (the kubelet's lifecycle stopSignal) first, and
// ContainerStatus reports it; SIGTERM when nothing says otherwise.
func TestStopSignal(t *testing.T) {
	e := newContainerEnv(t, "stopsig")
	trap := "trap 'exit 42' USR1; trap 'exit 43' TERM; while :; do sleep 0.1; done"
	tests := []struct {
		desc   string
		signal runtimeapi.Signal
		status runtimeapi.Signal
		code   int32
	}{
		{"default", runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, runtimeapi.Signal_SIGNAL_SIGTERM, 43},
		{"stop_signal", runtimeapi.Signal_SIGNAL_SIGUSR1, runtimeapi.Signal_SIGNAL_SIGUSR1, 42},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			id := e.run(t, strings.ReplaceAll(test.desc, "_", "-"), func(c *runtimeapi.ContainerConfig) {
				c.Command, c.StopSignal = []string{"sh", "-c", trap}, test.signal
			})
			if st := e.status(t, id); st.StopSignal != test.status {
				t.Errorf("status stop_signal = %v, want %v", st.StopSignal, test.status)
			}
			time.Sleep(300 * time.Millisecond) // the shell has set its traps
			if _, err := e.d.Runtime.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
				t.Fatal(err)
			}
			if st := e.status(t, id); st.ExitCode != test.code {
				t.Errorf("exit code %d, want %d (the trap of the signal sent)", st.ExitCode, test.code)
			}
		})
	}
}
