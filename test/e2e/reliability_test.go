package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/namespace"
	"github.com/berth-runtime/berth/runtime/testhook"
)

// kill -9 of the managed containerd with running pods: berthd restarts it, the pods stay READY,
// their containers RUNNING, their logs keep growing, and an exit after the restart is seen.
func TestPodsSurviveAKilledContainerd(t *testing.T) {
	e := newContainerEnv(t, "ctrdkill")
	const pods = 20
	type pc struct{ pod, ctr, log string }
	var all []pc
	for i := range pods {
		pod := e.pod
		if i > 0 {
			cfg := podConfig(fmt.Sprintf("ctrdkill-%d", i))
			cfg.LogDirectory = t.TempDir()
			cfg.Linux.CgroupParent = "/berth-e2e/ctrdkill"
			pod = runPod(t, e.d, cfg)
			e2 := &containerEnv{d: e.d, pod: pod, podCfg: cfg, logDir: cfg.LogDirectory}
			id := e2.run(t, "ticker", func(c *runtimeapi.ContainerConfig) {
				c.Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done"}
			})
			all = append(all, pc{pod, id, cfg.LogDirectory + "/ticker.log"})
			continue
		}
		id := e.run(t, "ticker", func(c *runtimeapi.ContainerConfig) {
			c.Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done"}
		})
		all = append(all, pc{pod, id, e.logDir + "/ticker.log"})
	}
	quitter := e.run(t, "quitter", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "sleep 4; exit 5"}
	})

	old := e.d.ContainerdPid()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new containerd", func() bool {
		pid := e.d.ContainerdPid()
		return pid != 0 && pid != old && processAlive(pid)
	})
	time.Sleep(time.Second)

	for _, p := range all {
		st, err := e.d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.pod})
		if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s after containerd was killed: %v %v", p.pod, st.GetStatus().GetState(), err)
		}
		if cs := e.status(t, p.ctr); cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s after containerd was killed: %v (%s %s)", p.ctr, cs.State, cs.Reason, cs.Message)
		}
	}
	for _, p := range all {
		before := len(logEntries(t, p.log))
		waitFor(t, "the log to keep growing", func() bool { return len(logEntries(t, p.log)) > before+3 })
	}
	e.exec(t, all[0].ctr, "true") // exec goes through the new containerd
	if st := e.waitExit(t, quitter); st.ExitCode != 5 {
		t.Errorf("exit after the restart: code %d (%s %s), want 5", st.ExitCode, st.Reason, st.Message)
	}
}

// kill -9 of berthd while a pod's network is being set up: the restarted berthd reports the pod
// NOTREADY (its record came first), and stopping and removing it leaves nothing behind: no IP,
// veth, namespace pin or pod directory, and the name is free again.
func TestBerthdKilledDuringRunPodSandbox(t *testing.T) {
	confDir, binDir := slowNetwork(t, false)
	marker := filepath.Join(binDir, "add-started")
	d := startDaemon(t, "--cni-conf-dir", confDir, "--cni-bin-dirs", "/opt/cni/bin,"+binDir)
	cfg := podConfig("slow-interrupted")
	errc := make(chan error, 1)
	go func() {
		_, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		errc <- err
	}()
	waitFor(t, "CNI ADD to start", func() bool { _, err := os.Stat(marker); return err == nil })
	if err := d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("RunPodSandbox succeeded although berthd was killed during it")
	}
	time.Sleep(2500 * time.Millisecond) // the orphaned plugin finishes its ADD
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	list, err := d.Runtime.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 1 || list.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || list.Items[0].Metadata.Name != "slow-interrupted" {
		t.Fatalf("pods after the restart: %v %v; want the interrupted one, NOTREADY", list, err)
	}
	id := list.Items[0].Id
	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	assertNoPods(t, d)
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", e2eBridge).Output(); len(out) > 0 {
		t.Errorf("veths left on the bridge:\n%s", out)
	}
	if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), id) {
		t.Errorf("iptables rules of the interrupted pod left after its removal")
	}
	// The name is free again.
	runPod(t, d, cfg)
}

// berthd killed between creating a pod's network namespace pin file and bind-mounting the
// namespace on it (the soak, killing berthd and the shim during RunPodSandbox) leaves a pin that
// is an empty file: CNI DEL was given it as the pod's namespace, every plugin refused it
// ("unknown FS magic"), and the pod could never be stopped or removed. Such a pod turns NOTREADY,
// and stops and goes with its address released.
func TestPodWithAnEmptyNamespacePin(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	id := runPod(t, d, podConfig("empty-pin"))
	st := podStatus(t, d, id)
	ip := st.GetNetwork().GetIp()
	pin := filepath.Join(d.State, "pods", id, "ns", "net")
	if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod to turn NOTREADY", func() bool {
		return podStatus(t, d, id).State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	})
	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/var/lib/cni/networks", e2eNetwork, ip)); !os.IsNotExist(err) {
		t.Errorf("the address %s is still reserved after the stop: %v", ip, err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	assertNoPods(t, d)
}

// berthd killed inside RunPodSandbox after it made the pod's directory and pinned its
// namespaces, and before it wrote the pod's record (the soak, killing berthd during
// RunPodSandbox), left the directory and its pins for ever: no record names them. The restarted
// berthd removes them.
func TestRestartRemovesPodDirectoriesWithoutARecord(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	podDir := filepath.Join(d.State, "pods", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	pins, err := namespace.Pin(filepath.Join(podDir, "ns"), []namespace.Kind{namespace.Net, namespace.IPC}, "")
	if err != nil {
		t.Fatal(err)
	}
	// A pin file the kill left before its bind mount.
	if err := os.WriteFile(namespace.PinPath(filepath.Join(podDir, "ns"), namespace.UTS), nil, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	assertNoPods(t, d) // answered once berthd has loaded its state, orphans removed
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("the pod directory with no record is still there: %v", err)
	}
	for _, pin := range pins {
		if mounted, _ := mountinfo.Mounted(pin); mounted {
			t.Errorf("%s is still mounted", pin)
		}
	}
}

// Bad container configs are refused with the right code, naming the field, and leave nothing.
func TestBadContainerConfigsNameTheField(t *testing.T) {
	e := newContainerEnv(t, "badinput")
	good := func() *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: busyboxRef}, LogPath: "c.log"}
	}
	for _, test := range []struct {
		desc   string
		pod    string
		mutate func(*runtimeapi.ContainerConfig)
		code   codes.Code
		field  string
	}{
		{"log path escaping the pod's log dir", "", func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../etc/evil.log" }, codes.InvalidArgument, "log_path"},
		{"absolute log path", "", func(c *runtimeapi.ContainerConfig) { c.LogPath = "/var/log/x.log" }, codes.InvalidArgument, "log_path"},
		{"no name", "", func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "" }, codes.InvalidArgument, "metadata.name"},
		{"no image", "", func(c *runtimeapi.ContainerConfig) { c.Image = nil }, codes.InvalidArgument, "image"},
		{"relative mount target", "", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "data", HostPath: "/tmp"}}
		}, codes.InvalidArgument, "mounts[0].container_path"},
		{"image not pulled", "", func(c *runtimeapi.ContainerConfig) { c.Image.Image = "example.com/never/pulled:1" }, codes.NotFound, "example.com/never/pulled"},
		{"unknown pod", "0123456789abcdef", nil, codes.NotFound, "0123456789abcdef"},
	} {
		t.Run(test.desc, func(t *testing.T) {
			cfg := good()
			if test.mutate != nil {
				test.mutate(cfg)
			}
			pod := e.pod
			if test.pod != "" {
				pod = test.pod
			}
			_, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: e.podCfg})
			if status.Code(err) != test.code || !strings.Contains(err.Error(), test.field) {
				t.Errorf("CreateContainer = %v, want %v naming %q", err, test.code, test.field)
			}
		})
	}
	if list, _ := e.d.Runtime.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{}); len(list.GetContainers()) != 0 {
		t.Errorf("refused creates left containers: %v", list.Containers)
	}
	// The name is still free.
	e.run(t, "c", nil)
}

// What an interrupted CreateContainer or StartContainer leaves is dealt with at the next start:
// a writable snapshot no container owns is removed; a task started for a container recorded as
// created is taken up (RUNNING, exec works, removal kills it).
func TestRestartFinishesInterruptedCreatesAndStarts(t *testing.T) {
	// ctr starts the task the way containerd starts its own shims; a pod with berth's own shim
	// has its tasks created through the shim's endpoint, which ctr cannot do
	// (TestBerthdKilledDuringCreateAndStart interrupts berth's own starts).
	e := newContainerEnv(t, "interrupted", "--shim-prestart=false")
	ctr := tool(t, "ctr")
	sock := filepath.Join(e.d.State, "containerd", "containerd.sock")
	ctrCmd := func(args ...string) string {
		out, err := exec.Command(ctr, append([]string{"-a", sock, "-n", "berth"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// An orphaned writable snapshot, as a create killed after preparing it leaves.
	var parent string
	for _, line := range strings.Split(ctrCmd("snapshots", "ls"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "Committed" {
			parent = f[0]
		}
	}
	ctrCmd("snapshots", "prepare", "orphan-of-a-killed-create", parent)

	// A container whose task was started by a berthd that died before recording it: created
	// through berth, its task started behind berth's back.
	id := e.create(t, "started-behind", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "while true; do echo tick; sleep 0.1; done"}
	})
	if err := e.d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctrCmd("tasks", "start", "-d", "--null-io", id) // ctr's own stdio would die with it

	if err := e.d.Run(); err != nil {
		t.Fatal(err)
	}
	// The status waits for berthd to have loaded its state, orphans removed included.
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container started behind berth's back: %v", st.State)
	}
	if out := ctrCmd("snapshots", "ls"); strings.Contains(out, "orphan-of-a-killed-create") {
		t.Errorf("orphaned snapshot still there:\n%s", out)
	}
	e.exec(t, id, "true")
	// It is berth's again: stop and remove work, and nothing of it is left.
	if _, err := e.d.Runtime.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if procs := processesWith(id); len(procs) > 0 {
		t.Errorf("processes of the taken-up container left: %v", procs)
	}
}

// kill -9 of berthd held inside CreateContainer or StartContainer (a test hook holds it there):
// after the restart the half-done create is gone with its snapshot and its name is free, a
// start that had not run the process leaves a created container that starts, one that had is a
// running container whose logs go on; and removing the pod leaves nothing.
func TestBerthdKilledDuringCreateAndStart(t *testing.T) {
	for _, point := range []string{testhook.CreateAfterSnapshot, testhook.CreateImageMounted, testhook.StartAfterTaskCreate, testhook.StartAfterTaskStart} {
		t.Run(point, func(t *testing.T) {
			sockets := func() int { entries, _ := os.ReadDir("/run/containerd/s"); return len(entries) }
			socketsBefore := sockets()
			e := newContainerEnv(t, "held-"+point)
			marks := t.TempDir()
			if err := e.d.Stop(syscall.SIGTERM); err != nil { // containerd keeps running
				t.Fatal(err)
			}
			e.d.Env = []string{"BERTH_TEST_HOLD=" + point + ":" + marks}
			if err := e.d.Run(); err != nil {
				t.Fatal(err)
			}
			ticker := func(c *runtimeapi.ContainerConfig) {
				c.Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.05; done"}
			}
			errc := make(chan error, 1)
			var id string
			creating := point == testhook.CreateAfterSnapshot || point == testhook.CreateImageMounted
			if creating {
				go func() {
					_, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
						Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "held"}, Image: &runtimeapi.ImageSpec{Image: busyboxRef}, LogPath: "held.log"}})
					errc <- err
				}()
			} else {
				id = e.create(t, "held", ticker)
				go func() {
					_, err := e.d.Runtime.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id})
					errc <- err
				}()
			}
			waitFor(t, "berthd to reach "+point, func() bool { _, err := os.Stat(filepath.Join(marks, point)); return err == nil })
			if err := e.d.Stop(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err == nil {
				t.Fatal("the call succeeded although berthd was killed during it")
			}
			e.d.Env = nil
			if err := e.d.Run(); err != nil {
				t.Fatal(err)
			}
			list, err := e.d.Runtime.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
			if err != nil {
				t.Fatal(err)
			}
			switch point {
			case testhook.CreateAfterSnapshot, testhook.CreateImageMounted:
				// The killed create's lease is released and its temporary mount of the image
				// is gone (they were left: the lease for its hour, the mount for good).
				leasesOut, _ := exec.Command(tool(t, "ctr"), "-a", filepath.Join(e.d.State, "containerd", "containerd.sock"), "-n", "berth", "leases", "ls").CombinedOutput()
				if strings.Contains(string(leasesOut), "create-container") {
					t.Errorf("the killed create's lease is left:\n%s", leasesOut)
				}
				if m, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Join(e.d.State, "tmpmounts"))); len(m) > 0 {
					t.Errorf("the killed create's temporary mounts are left: %v", m)
				}
				if m, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(os.TempDir())); slices.ContainsFunc(m, func(i *mountinfo.Info) bool {
					return strings.HasPrefix(filepath.Base(i.Mountpoint), "containerd-mount")
				}) {
					t.Errorf("a temporary mount is in the node's %s", os.TempDir())
				}
				if len(list.Containers) != 0 {
					t.Fatalf("containers after a killed create: %v", list.Containers)
				}
				out, _ := exec.Command(tool(t, "ctr"), "-a", filepath.Join(e.d.State, "containerd", "containerd.sock"), "-n", "berth", "snapshots", "ls").CombinedOutput()
				if strings.Contains(string(out), "Active") {
					t.Errorf("the killed create's snapshot is left:\n%s", out)
				}
				id = e.run(t, "held", ticker) // the name is free again
			case testhook.StartAfterTaskCreate:
				if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
					t.Fatalf("after a start killed before the process ran: %v, want CREATED", st.State)
				}
				e.start(t, id)
			case testhook.StartAfterTaskStart:
				if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
					t.Fatalf("after a start killed once the process ran: %v, want RUNNING", st.State)
				}
			}
			// Running, and its output reaches its log after the restart.
			logPath := filepath.Join(e.logDir, "held.log")
			size := func() int64 { fi, _ := os.Stat(logPath); return fi.Size() }
			first := size()
			waitFor(t, "the container to keep logging", func() bool { return size() > first })
			if got := e.exec(t, id, "echo", "alive"); got != "alive\n" {
				t.Errorf("exec after the restart: %q", got)
			}
			if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
				t.Fatal(err)
			}
			assertNoPods(t, e.d)
			if left := shimsOf(e.d.State); left != "" {
				t.Errorf("shims left after the pod was removed:\n%s", left)
			}
			if n := sockets(); n != socketsBefore {
				t.Errorf("%d shim sockets after the pod was removed, %d before", n, socketsBefore)
			}
			if procs := processesWith("tick$i"); len(procs) > 0 {
				t.Errorf("processes of the container left: %v", procs)
			}
		})
	}
}

// slowNetwork is the e2e network with a bridge plugin that sleeps 2 s in ADD for pods named
// slow-* and in DEL for every pod when delDelay is set; marker files say when it started.
func slowNetwork(t *testing.T, slowDel bool) (confDir, binDir string) {
	binDir = t.TempDir()
	del := ""
	if slowDel {
		del = fmt.Sprintf("[ \"$CNI_COMMAND\" = DEL ] && { touch %s/del-started; sleep 2; }\n", binDir)
	}
	script := fmt.Sprintf("#!/bin/sh\ncase \"$CNI_ARGS\" in *K8S_POD_NAME=slow-*) [ \"$CNI_COMMAND\" = ADD ] && { touch %s/add-started; sleep 2; } ;; esac\n%sexec /opt/cni/bin/bridge\n", binDir, del)
	if err := os.WriteFile(filepath.Join(binDir, "slowbridge"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	confDir = podNetwork(t)
	conf := filepath.Join(confDir, "10-e2e.conflist")
	b, _ := os.ReadFile(conf)
	if err := os.WriteFile(conf, []byte(strings.Replace(string(b), `"type": "bridge"`, `"type": "slowbridge"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return confDir, binDir
}

// A slow CNI ADD for one pod does not hold back another pod's RunPodSandbox.
func TestSlowPodDoesNotBlockOthers(t *testing.T) {
	confDir, binDir := slowNetwork(t, false)
	d := startDaemon(t, "--cni-conf-dir", confDir, "--cni-bin-dirs", "/opt/cni/bin,"+binDir)
	slowDone := make(chan error, 1)
	go func() {
		_, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("slow-one")})
		slowDone <- err
	}()
	waitFor(t, "the slow ADD to start", func() bool { _, err := os.Stat(filepath.Join(binDir, "add-started")); return err == nil })
	runPod(t, d, podConfig("quick-one"))
	select {
	case err := <-slowDone:
		t.Fatalf("the slow pod finished (%v) before the quick one: the quick one waited for it", err)
	default:
	}
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
}

// kill -9 of berthd during a pod's CNI DEL: after the restart the pod is still there, and a
// second StopPodSandbox (what the kubelet does) finishes the teardown; nothing is left.
func TestBerthdKilledDuringStopPodSandbox(t *testing.T) {
	confDir, binDir := slowNetwork(t, true)
	d := startDaemon(t, "--cni-conf-dir", confDir, "--cni-bin-dirs", "/opt/cni/bin,"+binDir)
	pod := runPod(t, d, podConfig("stopping"))
	go d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod})
	waitFor(t, "CNI DEL to start", func() bool { _, err := os.Stat(filepath.Join(binDir, "del-started")); return err == nil })
	if err := d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // the orphaned DEL finishes
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("the pod is gone after the restart: %v", err)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("StopPodSandbox again: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertNoPods(t, d)
}

// kill -9 of berthd and of its containerd together: the new berthd starts a new containerd,
// which finds the shims; pods stay READY and containers RUNNING.
func TestBerthdAndContainerdKilledTogether(t *testing.T) {
	e := newContainerEnv(t, "bothkilled")
	id := e.run(t, "ticker", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "while true; do echo tick; sleep 0.05; done"}
	})
	ctrd := e.d.ContainerdPid()
	if err := e.d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(ctrd, syscall.SIGKILL)
	waitFor(t, "containerd to die", func() bool { return !processAlive(ctrd) })
	if err := e.d.Run(); err != nil {
		t.Fatal(err)
	}
	st, err := e.d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.pod})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod after both were killed: %v %v", st.GetStatus().GetState(), err)
	}
	if cs := e.status(t, id); cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after both were killed: %v (%s)", cs.State, cs.Message)
	}
	logPath := filepath.Join(e.logDir, "ticker.log")
	before := len(logEntries(t, logPath))
	waitFor(t, "the log to keep growing", func() bool { return len(logEntries(t, logPath)) > before+3 })
	e.exec(t, id, "true")
}

// A containerd that stops answering (SIGSTOP) makes calls that need it fail at their deadline
// with a clear error; berthd itself keeps answering, and recovers when containerd does.
func TestStuckContainerdIsBoundedByDeadlines(t *testing.T) {
	e := newContainerEnv(t, "stuck")
	id := e.run(t, "app", nil)
	ctrd := e.d.ContainerdPid()
	if err := syscall.Kill(ctrd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(ctrd, syscall.SIGCONT)
	short, cancel := context.WithTimeout(ctx(t), 2*time.Second)
	defer cancel()
	_, err := e.d.Runtime.ExecSync(short, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 1})
	if code := status.Code(err); code != codes.DeadlineExceeded {
		t.Errorf("ExecSync against a stuck containerd = %v, want DeadlineExceeded", err)
	}
	// What needs no containerd still answers at once: status, lists.
	quick, cancelQuick := context.WithTimeout(ctx(t), time.Second)
	defer cancelQuick()
	if _, err := e.d.Runtime.ContainerStatus(quick, &runtimeapi.ContainerStatusRequest{ContainerId: id}); err != nil {
		t.Errorf("ContainerStatus while containerd is stuck: %v", err)
	}
	if _, err := e.d.Runtime.ListPodSandbox(quick, &runtimeapi.ListPodSandboxRequest{}); err != nil {
		t.Errorf("ListPodSandbox while containerd is stuck: %v", err)
	}
	syscall.Kill(ctrd, syscall.SIGCONT)
	e.exec(t, id, "true")
}

// A pod's shim killed under a running container: the container is reported EXITED, nothing of
// it is left running or mounted, the pod runs new containers (in a new shim), and the pod's
// removal leaves the host as it was. Both with the pod's own shim (the default) and with the
// shim containerd starts for the pod's first container.
func TestKilledShim(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"own shim", nil},
		{"containerd's shim", []string{"--shim-prestart=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newContainerEnv(t, "killed-shim", tc.args...)
			if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
				t.Fatal(err)
			}
			before := settledTraces(t, e.d.State, countTraces(t, e.d.State))
			e.pod = runPod(t, e.d, e.podCfg)
			a := e.run(t, "a", nil)
			shims := processesWith(e.d.State)
			var shim []int
			for _, pid := range shims {
				if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasSuffix(strings.SplitN(string(cmd), "\x00", 2)[0], "containerd-shim-runc-v2") {
					shim = append(shim, pid)
				}
			}
			if len(shim) != 1 {
				t.Fatalf("want the pod's one shim, found %d:\n%s", len(shim), shimsOf(e.d.State))
			}
			if err := syscall.Kill(shim[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			st := e.waitExit(t, a)
			if st.ExitCode == 0 {
				t.Errorf("container a of a killed shim exited %d, want a failure", st.ExitCode)
			}
			waitFor(t, "container a's processes to go", func() bool { return len(processesWhose("cgroup", a)) == 0 })

			b := e.run(t, "b", nil)
			if got := e.exec(t, b, "echo", "alive"); got != "alive\n" {
				t.Errorf("a new container in the pod answers %q", got)
			}
			if _, err := e.d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
				t.Fatal(err)
			}
			if after := settledTraces(t, e.d.State, before); after != before {
				t.Errorf("after the pod's removal the host holds %+v, before %+v", after, before)
			}
		})
	}
}
