package guest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The reboot test runs over two boots: TestRebootPrepare (in the first boot's run, last) leaves
// the kubelet and berth enabled with a static pod that shares its PID namespace running, notes
// the pod sandbox and its IP, and run.sh reboots the guest; in the second boot, systemd starts
// berth and the kubelet as on any node, and TestRebootRecreates checks what became of the pod.
const rebootNote = "/var/lib/vm-test/before-reboot.json"

const survivorPod = `apiVersion: v1
kind: Pod
metadata:
  name: survivor
  namespace: default
spec:
  shareProcessNamespace: true
  containers:
  - name: app
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do sleep 1; done"]
`

type beforeReboot struct {
	Sandbox, IP, BootID string
}

func bootID(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// readySandbox is the READY sandbox of the static pod name, if any.
func readySandbox(t *testing.T, name string) *runtimeapi.PodSandbox {
	resp, err := rt.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{"io.kubernetes.pod.name": name + "-berth-vm"}}})
	if err != nil || len(resp.Items) == 0 {
		return nil
	}
	return resp.Items[0]
}

func TestRebootPrepare(t *testing.T) {
	if os.Getenv("BERTH_VM_PHASE") != "before-reboot" {
		t.Skip("only in the boot before the reboot")
	}
	for path, content := range map[string]string{
		"/etc/kubernetes/kubelet.yaml":            kubeletConfig,
		"/etc/systemd/system/kubelet.service":     kubeletUnit + "\n[Install]\nWantedBy=multi-user.target\n",
		"/etc/kubernetes/manifests/survivor.yaml": survivorPod,
	} {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, "systemctl", "daemon-reload")
	sh(t, "systemctl", "enable", "berth", "kubelet")
	sh(t, "systemctl", "start", "kubelet")
	var sb *runtimeapi.PodSandbox
	waitUntil(t, "the survivor pod running", 8*time.Minute, func() bool {
		sb = readySandbox(t, "survivor")
		c := kubeletContainer(t, "survivor", "app")
		return sb != nil && c != nil && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	})
	st, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.Id})
	if err != nil {
		t.Fatal(err)
	}
	note, _ := json.Marshal(beforeReboot{Sandbox: sb.Id, IP: st.Status.GetNetwork().GetIp(), BootID: bootID(t)})
	os.MkdirAll(filepath.Dir(rebootNote), 0o755)
	if err := os.WriteFile(rebootNote, note, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("before the reboot: %s", note)
}

// After a reboot, under the kubelet: the pod berth knew is NOTREADY (its namespaces, /dev/shm,
// infra process and tasks are gone), the kubelet has made a new one that runs, the old one's IP
// is released, and the new container shares its PID namespace with the new infra process, not
// with whatever took the old one's pid.
func TestRebootRecreates(t *testing.T) {
	if os.Getenv("BERTH_VM_PHASE") != "after-reboot" {
		t.Skip("only in the boot after the reboot")
	}
	b, err := os.ReadFile(rebootNote)
	if err != nil {
		t.Fatal(err)
	}
	var before beforeReboot
	if err := json.Unmarshal(b, &before); err != nil {
		t.Fatal(err)
	}
	if bootID(t) == before.BootID {
		t.Fatal("the guest did not reboot")
	}
	var sb *runtimeapi.PodSandbox
	waitUntil(t, "the kubelet's new survivor pod", 8*time.Minute, func() bool {
		sb = readySandbox(t, "survivor")
		c := kubeletContainer(t, "survivor", "app")
		return sb != nil && sb.Id != before.Sandbox && c != nil && c.PodSandboxId == sb.Id && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	})
	// The old pod: NOTREADY, or already removed by the kubelet.
	if st, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: before.Sandbox}); err == nil &&
		st.Status.State == runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("the pod from before the reboot still says READY")
	}
	// Its IP reservation (host-local keeps them on disk, which the reboot did not clear) is
	// released once the kubelet has stopped it.
	waitUntil(t, "the old pod's IP released", 3*time.Minute, func() bool {
		files, _ := filepath.Glob("/var/lib/cni/networks/berth-vm/*")
		for _, f := range files {
			if b, _ := os.ReadFile(f); strings.HasPrefix(string(b), before.Sandbox) {
				return false
			}
		}
		return true
	})
	// The new container and the new infra process share a PID namespace.
	c := kubeletContainer(t, "survivor", "app")
	infra, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.Id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	json.Unmarshal([]byte(infra.Info["info"]), &info)
	ctrNS, _ := os.Readlink("/proc/" + strconv.Itoa(pidOf(t, c.Id)) + "/ns/pid")
	infraNS, _ := os.Readlink("/proc/" + strconv.Itoa(info.Pid) + "/ns/pid")
	if info.Pid == 0 || ctrNS == "" || ctrNS != infraNS {
		t.Errorf("the new container's PID namespace %q is not its infra process's (pid %d) %q", ctrNS, info.Pid, infraNS)
	}
	if !strings.Contains(sh(t, "journalctl", "-u", "berth", "--no-pager", "-b"), "pod sandbox from before the node's reboot") {
		t.Error("berthd did not say it found a pod from before the reboot")
	}
	os.Remove("/etc/kubernetes/manifests/survivor.yaml")
	waitUntil(t, "the survivor pod gone", 3*time.Minute, func() bool { return readySandbox(t, "survivor") == nil })
}
