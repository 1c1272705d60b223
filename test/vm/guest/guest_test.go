// Package guest holds the tests `make vm-test` runs inside its cgroup v2 + systemd guest,
// against the berthd that systemd runs there from the project's unit (berth.service), as an
// operator's node would. Outside the guest (BERTH_VM_GUEST unset) they skip.
package guest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

const (
	endpoint = "unix:///run/berth/berth.sock"
	busybox  = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
)

var (
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	imgs    runtimeapi.ImageServiceClient
	podSeq  int
	logRoot = "/var/log/vm-test-pods"
)

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_VM_GUEST") == "" {
		fmt.Println("not in the vm-test guest (BERTH_VM_GUEST unset): skipping")
		os.Exit(0)
	}
	var err error
	if conn, err = daemon.Dial(endpoint); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rt, imgs = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	_, err = imgs.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: busybox}})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pull:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Logf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// pod is a running pod whose cgroup parent is the kubelet's pod slice for QoS class qos, as the
// kubelet names it with the systemd driver.
type pod struct {
	id, slice string
	cfg       *runtimeapi.PodSandboxConfig
}

func runPod(t *testing.T, qos string) *pod {
	t.Helper()
	podSeq++
	uid := fmt.Sprintf("vm%d%d", os.Getpid(), podSeq)
	slice := "kubepods-" + qos + "-pod" + uid + ".slice"
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "p" + uid, Namespace: "vm", Uid: uid},
		Hostname:     "p" + uid,
		LogDirectory: filepath.Join(logRoot, uid),
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: slice, SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}},
	}
	os.MkdirAll(cfg.LogDirectory, 0o755)
	resp, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	p := &pod{id: resp.PodSandboxId, slice: slice, cfg: cfg}
	t.Cleanup(func() {
		rt.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
	})
	return p
}

func (p *pod) run(t *testing.T, name string, mutate func(*runtimeapi.ContainerConfig)) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: busybox},
		Command:  []string{"sh", "-c", "while true; do i=$((i+1)); sleep 0.2; done"},
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{}},
	}
	if mutate != nil {
		mutate(cfg)
	}
	resp, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	return resp.ContainerId
}

func status(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return resp.Status
}

// pidOf is the container's process in the guest, from its verbose status.
func pidOf(t *testing.T, id string) int {
	t.Helper()
	resp, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	info := resp.Info["info"]
	i := strings.Index(info, `"pid":`)
	if i < 0 {
		t.Fatalf("no pid in the verbose status: %s", info)
	}
	n, _ := strconv.Atoi(strings.TrimFunc(strings.SplitN(info[i+6:], ",", 2)[0], func(r rune) bool { return r < '0' || r > '9' }))
	return n
}

func execIn(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	resp, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 60})
	if err != nil || resp.ExitCode != 0 {
		t.Fatalf("exec %q: %v (exit %d) %s", cmd, err, resp.GetExitCode(), resp.GetStderr())
	}
	return strings.TrimSpace(string(resp.Stdout))
}

func sliceDir(slice string) string {
	dir, prefix := "/sys/fs/cgroup", ""
	for _, part := range strings.Split(strings.TrimSuffix(slice, ".slice"), "-") {
		prefix += part
		dir = filepath.Join(dir, prefix+".slice")
		prefix += "-"
	}
	return dir
}

func TestNodeIsCgroupV2WithSystemd(t *testing.T) {
	if fs := sh(t, "stat", "-f", "-c", "%T", "/sys/fs/cgroup"); fs != "cgroup2fs" {
		t.Errorf("/sys/fs/cgroup is %s, want cgroup2fs", fs)
	}
	if comm, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(comm)) != "systemd" {
		t.Errorf("PID 1 is %q, want systemd", comm)
	}
	resp, err := rt.RuntimeConfig(ctx(t), &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.GetLinux().GetCgroupDriver(); d != runtimeapi.CgroupDriver_SYSTEMD {
		t.Errorf("RuntimeConfig reports %v, want SYSTEMD", d)
	}
}

// berth.service as an operator runs it: a notify unit that is active, with its watchdog, and
// the gRPC health service SERVING on the CRI socket.
func TestBerthIsANotifyUnit(t *testing.T) {
	show := sh(t, "systemctl", "show", "berth", "-p", "Type", "-p", "ActiveState", "-p", "WatchdogUSec", "-p", "Delegate", "-p", "KillMode")
	for _, want := range []string{"Type=notify", "ActiveState=active", "WatchdogUSec=1min", "Delegate=yes", "KillMode=process"} {
		if !strings.Contains(show, want) {
			t.Errorf("systemctl show berth: no %s in\n%s", want, show)
		}
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v, %v", resp.GetStatus(), err)
	}
}

// A container is a transient scope in its pod's slice (runc's systemd driver), with its limits
// there; inside it sees its own cgroup as the root, read-only; stats come from the scope; and
// removing the pod removes the scope and the slice runc made.
func TestContainerIsAScopeInThePodSlice(t *testing.T) {
	p := runPod(t, "burstable")
	id := p.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuQuota: 50000, CpuPeriod: 100000, CpuShares: 512}
		c.Command = []string{"sh", "-c", "while true; do i=$((i+1)); done"} // some CPU to count
	})
	scope := "berth-" + id + ".scope"
	if state := sh(t, "systemctl", "is-active", scope); state != "active" {
		t.Errorf("systemctl is-active %s: %q", scope, state)
	}
	if slice := sh(t, "systemctl", "show", scope, "-p", "Slice", "--value"); slice != p.slice {
		t.Errorf("%s is in %q, want the pod's %s", scope, slice, p.slice)
	}
	dir := filepath.Join(sliceDir(p.slice), scope)
	pid := pidOf(t, id)
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if want := "0::" + strings.TrimPrefix(dir, "/sys/fs/cgroup") + "\n"; string(cg) != want {
		t.Errorf("the container's process is in %q, want %q", cg, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "memory.max")); strings.TrimSpace(string(b)) != "67108864" {
		t.Errorf("memory.max of the scope: %q, want 67108864", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cpu.max")); strings.TrimSpace(string(b)) != "50000 100000" {
		t.Errorf("cpu.max of the scope: %q, want 50000 100000", b)
	}

	if got := execIn(t, id, "cat", "/proc/self/cgroup"); got != "0::/" {
		t.Errorf("inside, /proc/self/cgroup is %q, want 0::/ (a cgroup namespace of its own)", got)
	}
	mounts := execIn(t, id, "cat", "/proc/self/mountinfo")
	var cgMount string
	for _, l := range strings.Split(mounts, "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == "/sys/fs/cgroup" {
			cgMount = l
		}
	}
	if !strings.Contains(cgMount, " ro,") || !strings.Contains(cgMount, "cgroup2") {
		t.Errorf("inside, /sys/fs/cgroup is not a read-only cgroup2 mount: %q", cgMount)
	}
	if got := execIn(t, id, "cat", "/sys/fs/cgroup/memory.max"); got != "67108864" {
		t.Errorf("inside, memory.max is %q", got)
	}

	time.Sleep(3 * time.Second)
	st, err := rt.ContainerStats(ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || st.Stats.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("container stats from the scope are empty: %v", st.Stats)
	}
	ps, err := rt.PodSandboxStats(ctx(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: p.id})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Stats.GetLinux().GetMemory().GetWorkingSetBytes().GetValue() == 0 || ps.Stats.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 {
		t.Errorf("pod stats from the slice are empty: %v", ps.Stats.GetLinux())
	}

	if _, err := rt.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatal(err)
	}
	if state := sh(t, "systemctl", "is-active", scope); state == "active" {
		t.Errorf("%s is still active after its pod was removed", scope)
	}
	for _, d := range []string{dir, sliceDir(p.slice)} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s is left after the pod was removed", d)
		}
	}
}

func TestOOMKilledIsReported(t *testing.T) {
	p := runPod(t, "burstable")
	id := p.run(t, "hog", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "a=x; while true; do a=$a$a; done"}
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := status(t, id)
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			if st.Reason != "OOMKilled" || st.ExitCode != 137 {
				t.Errorf("exited %d, %q; want 137, OOMKilled", st.ExitCode, st.Reason)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hog did not exit: %v", st.State)
		}
		time.Sleep(time.Second)
	}
}

// systemctl restart berth restarts no container: the managed containerd and the shims stay in
// the unit's cgroup (KillMode=process), and the new berthd finds the container running.
func TestUnitRestartKeepsContainers(t *testing.T) {
	p := runPod(t, "besteffort")
	id := p.run(t, "app", nil)
	pid := pidOf(t, id)
	before := sh(t, "systemctl", "show", "berth", "-p", "MainPID", "--value")
	if out := sh(t, "systemctl", "restart", "berth"); out != "" {
		t.Logf("systemctl restart berth: %s", out)
	}
	after := sh(t, "systemctl", "show", "berth", "-p", "MainPID", "--value")
	if after == before || after == "0" {
		t.Fatalf("berthd's pid %s -> %s: not restarted", before, after)
	}
	if st := status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after the restart the container is %v", st.State)
	}
	if got := pidOf(t, id); got != pid {
		t.Errorf("the container's process changed across the restart: %d -> %d", pid, got)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Errorf("the container's process is gone: %v", err)
	}
	execIn(t, id, "true")
}

// cgroup v2 for real: the memory+swap limit becomes memory.swap.max (the kubelet's LimitedSwap
// sends one), `unified` keys are written to the scope, and stats and metrics carry what only v2
// has: pressure stall information for CPU, memory and I/O, in the container's and the pod's
// stats and in the cAdvisor metrics the kubelet serves from ListPodSandboxMetrics.
func TestV2SwapUnifiedAndPressure(t *testing.T) {
	p := runPod(t, "burstable")
	id := p.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{
			MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 96 << 20,
			Unified: map[string]string{"memory.high": "50331648"},
		}
		// CPU, some memory and writes to count: pressure moves only under contention, but
		// its files and totals are there from the start.
		c.Command = []string{"sh", "-c", "while true; do dd if=/dev/zero of=/tmp/f bs=64k count=64 2>/dev/null; i=$((i+1)); done"}
	})
	dir := filepath.Join(sliceDir(p.slice), "berth-"+id+".scope")
	for file, want := range map[string]string{
		"memory.max":      "67108864",
		"memory.swap.max": "33554432", // memory+swap 96 MiB less memory 64 MiB
		"memory.high":     "50331648",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s of the scope: %q, %v; want %s", file, strings.TrimSpace(string(b)), err, want)
		}
	}

	time.Sleep(3 * time.Second)
	st, err := rt.ContainerStats(ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.Stats.GetCpu().GetPsi().GetSome() == nil || st.Stats.GetMemory().GetPsi().GetSome() == nil || st.Stats.GetIo().GetPsi().GetSome() == nil {
		t.Errorf("container stats without pressure stall information: cpu %v, memory %v, io %v",
			st.Stats.GetCpu().GetPsi(), st.Stats.GetMemory().GetPsi(), st.Stats.GetIo())
	}
	ps, err := rt.PodSandboxStats(ctx(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: p.id})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Stats.GetLinux().GetIo().GetPsi() == nil || ps.Stats.GetLinux().GetCpu().GetPsi() == nil {
		t.Errorf("pod stats without pressure stall information: %v", ps.Stats.GetLinux())
	}

	metrics, err := rt.ListPodSandboxMetrics(ctx(t), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, pm := range metrics.PodMetrics {
		if pm.PodSandboxId != p.id {
			continue
		}
		for _, cm := range pm.ContainerMetrics {
			for _, m := range cm.Metrics {
				names[m.Name] = true
			}
		}
	}
	for _, want := range []string{
		"container_pressure_cpu_waiting_seconds_total", "container_pressure_memory_stalled_seconds_total",
		"container_pressure_io_waiting_seconds_total", "container_fs_writes_bytes_total", "container_spec_memory_swap_limit_bytes",
	} {
		if !names[want] {
			t.Errorf("ListPodSandboxMetrics: no %s for the container", want)
		}
	}
}

// A pod with a user namespace of its own (the kubelet's hostUsers: false) runs on this node's
// kernel (Debian 12's 6.1), whose tmpfs takes no idmapped mounts: its /etc/hosts, resolv.conf
// and hostname, idmapped into it, are under berth's root, not its state on /run (critest's
// NamespaceMode_POD spec failed here before).
func TestUserNamespacedPodRuns(t *testing.T) {
	podSeq++
	uid := fmt.Sprintf("vmuserns%d%d", os.Getpid(), podSeq)
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 65536 * 40, Length: 65536}}
	p := &pod{slice: "kubepods-besteffort-pod" + uid + ".slice", cfg: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p" + uid, Namespace: "vm", Uid: uid}, Hostname: "p" + uid,
		LogDirectory: filepath.Join(logRoot, uid),
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "kubepods-besteffort-pod" + uid + ".slice",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Pid: runtimeapi.NamespaceMode_CONTAINER, UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}}}},
	}}
	os.MkdirAll(p.cfg.LogDirectory, 0o755)
	resp, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: p.cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	p.id = resp.PodSandboxId
	t.Cleanup(func() {
		rt.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
	})
	id := p.run(t, "app", nil)
	if got := execIn(t, id, "cat", "/proc/self/uid_map"); strings.Join(strings.Fields(got), " ") != "0 2621440 65536" {
		t.Errorf("uid_map inside: %q", got)
	}
	if got := execIn(t, id, "stat", "-c", "%u:%g", "/etc/hosts"); got != "0:0" {
		t.Errorf("/etc/hosts inside is owned by %s, want 0:0 (idmapped)", got)
	}
}
