package guest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// The kubelet as a node runs it: a systemd service, its configuration only what a standalone
// kubelet needs (the runtime, static pods, its API open to this test). cgroupDriver and
// failCgroupV1 are left at their defaults: the driver comes from berth's RuntimeConfig, and a
// cgroup v1 node would be refused.
const (
	kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix:///run/berth/berth.sock
staticPodPath: /etc/kubernetes/manifests
fileCheckFrequency: 1s
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
`
	kubeletUnit = `[Unit]
Description=kubelet (vm-test)
After=berth.service
Requires=berth.service

[Service]
ExecStart=/opt/berth/kube/kubelet --config=/etc/kubernetes/kubelet.yaml --hostname-override=berth-vm
Restart=no
`
	webPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
  - name: app
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do i=$((i+1)); done"]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 200m, memory: 64Mi}
`
	hogPod = `apiVersion: v1
kind: Pod
metadata:
  name: hog
  namespace: default
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "a=x; while true; do a=$a$a; done"]
    resources:
      limits: {cpu: 500m, memory: 32Mi}
`
)

var kubeletHTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

func kubeletGet(path string, v any) error {
	resp, err := kubeletHTTP.Get("https://127.0.0.1:10250" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(2 * time.Second)
	}
}

// kubeletContainer is the container name of the static pod pod, from the CRI: a running one
// if there is one (an exited one of an earlier sandbox or attempt may be listed too).
func kubeletContainer(t *testing.T, pod, name string) *runtimeapi.Container {
	resp, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.name": pod + "-berth-vm", "io.kubernetes.container.name": name}}})
	if err != nil || len(resp.Containers) == 0 {
		return nil
	}
	for _, c := range resp.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c
		}
	}
	return resp.Containers[0]
}

// A kubelet with its defaults on this node runs its pods on berth: each container a systemd
// scope in the pod slice the kubelet made (with the pod's limits on the slice and the
// container's on the scope), the kubelet's own stats of it right, an OOM kill reported to the
// kubelet as OOMKilled; and the kubelet smoke's pod shapes (checkSmokePods).
func TestKubeletRunsPodsAsScopesInItsSlices(t *testing.T) {
	files := map[string]string{
		"/etc/kubernetes/kubelet.yaml":        kubeletConfig,
		"/etc/systemd/system/kubelet.service": kubeletUnit,
		"/etc/kubernetes/manifests/web.yaml":  webPod,
		"/etc/kubernetes/manifests/hog.yaml":  hogPod,
	}
	// The kubelet smoke's pod shapes too (all but its ticker, whose log continuity across a
	// killed berthd the smoke and the soak check).
	os.MkdirAll(gracefulDir, 0o755)
	for name, manifest := range daemon.KubeletSmokePods {
		if name != "ticker" {
			files["/etc/kubernetes/manifests/smoke-"+name+".yaml"] = fmt.Sprintf(manifest, busybox, gracefulDir)
		}
	}
	for path, content := range files {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, "systemctl", "daemon-reload")
	start := time.Now()
	sh(t, "systemctl", "start", "kubelet")
	t.Cleanup(func() {
		for path := range files {
			if strings.HasPrefix(path, "/etc/kubernetes/manifests/") {
				os.Remove(path)
			}
		}
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			if resp, err := rt.ListPodSandbox(context.Background(), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
				State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}}); err == nil && len(resp.Items) == 0 {
				break
			}
			time.Sleep(2 * time.Second)
		}
		sh(t, "systemctl", "stop", "kubelet")
		os.WriteFile("/mnt/share/results/kubelet.log", []byte(sh(t, "journalctl", "-u", "kubelet", "--no-pager")), 0o644)
	})

	var web *runtimeapi.Container
	waitUntil(t, "the kubelet's web pod running on berth", 8*time.Minute, func() bool {
		c := kubeletContainer(t, "web", "app")
		if c != nil && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			web = c
			return true
		}
		if state := sh(t, "systemctl", "is-active", "kubelet"); state != "active" && state != "activating" {
			t.Fatalf("the kubelet is %s:\n%s", state, sh(t, "journalctl", "-u", "kubelet", "--no-pager", "-n", "40"))
		}
		return false
	})
	t.Logf("the kubelet started and ran its first pod in %s", time.Since(start).Round(time.Second))

	scope := "berth-" + web.Id + ".scope"
	slice := sh(t, "systemctl", "show", scope, "-p", "Slice", "--value")
	if !regexp.MustCompile(`^kubepods-burstable-pod[0-9a-f_]+\.slice$`).MatchString(slice) {
		t.Fatalf("the container's scope %s is in %q, want the kubelet's kubepods-burstable-pod<uid>.slice", scope, slice)
	}
	dir := filepath.Join(sliceDir(slice), scope)
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pidOf(t, web.Id)))
	if want := "0::" + strings.TrimPrefix(dir, "/sys/fs/cgroup") + "\n"; string(cg) != want {
		t.Errorf("the container's process is in %q, want %q", cg, want)
	}
	for file, want := range map[string]string{
		filepath.Join(dir, "memory.max"):             "67108864",
		filepath.Join(dir, "cpu.max"):                "20000 100000",
		filepath.Join(sliceDir(slice), "memory.max"): "67108864", // the kubelet's pod limit
	} {
		if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != want {
			t.Errorf("%s: %q, want %s", file, strings.TrimSpace(string(b)), want)
		}
	}

	// The kubelet's summary: the container's CPU (busy, capped at 200m) and memory.
	var summary struct {
		Pods []struct {
			PodRef     struct{ Name string }
			Containers []struct {
				Name string
				CPU  struct {
					UsageNanoCores       *uint64
					UsageCoreNanoSeconds *uint64
				}
				Memory struct{ WorkingSetBytes *uint64 }
			}
		}
	}
	waitUntil(t, "the kubelet's stats of the web container", 3*time.Minute, func() bool {
		if err := kubeletGet("/stats/summary", &summary); err != nil {
			t.Logf("summary: %v", err)
			return false
		}
		for _, p := range summary.Pods {
			for _, c := range p.Containers {
				if p.PodRef.Name == "web-berth-vm" && c.Name == "app" && c.CPU.UsageNanoCores != nil && c.Memory.WorkingSetBytes != nil {
					cores, ws := *c.CPU.UsageNanoCores, *c.Memory.WorkingSetBytes
					t.Logf("kubelet's summary of web/app: %d nanocores, %d bytes working set", cores, ws)
					if cores == 0 || cores > 400_000_000 || ws == 0 || ws > 64<<20 {
						t.Errorf("kubelet's stats of web/app are not a busy loop capped at 200m in 64Mi: %d nanocores, %d bytes", cores, ws)
					}
					return true
				}
			}
		}
		return false
	})

	// The hog, killed for memory: OOMKilled in the kubelet's pod status.
	var pods struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				ContainerStatuses []struct {
					Name  string
					State struct {
						Terminated *struct {
							Reason   string
							ExitCode int
						}
					}
				}
			}
		}
	}
	waitUntil(t, "the kubelet to see the hog terminated", 4*time.Minute, func() bool {
		if err := kubeletGet("/pods", &pods); err != nil {
			return false
		}
		for _, p := range pods.Items {
			for _, c := range p.Status.ContainerStatuses {
				if p.Metadata.Name == "hog-berth-vm" && c.State.Terminated != nil {
					if c.State.Terminated.Reason != "OOMKilled" || c.State.Terminated.ExitCode != 137 {
						t.Errorf("the kubelet sees the hog terminated %d, %q; want 137, OOMKilled", c.State.Terminated.ExitCode, c.State.Terminated.Reason)
					}
					return true
				}
			}
		}
		return false
	})

	checkSmokePods(t)
}

// gracefulDir is the host directory of the smoke's graceful pod.
const gracefulDir = "/var/lib/vm-test/graceful"

// checkSmokePods checks the kubelet smoke's pod shapes on this node, through the kubelet's API
// and the CRI: a ready pod behind probes, an init container's work, a crash loop, a shared PID
// namespace, host network, an image volume, limits on the scope, and a graceful stop.
func checkSmokePods(t *testing.T) {
	type containerStatus struct {
		Name         string
		Ready        bool
		RestartCount int
		LastState    struct {
			Terminated *struct{ ExitCode int }
		}
	}
	var pods struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Conditions        []struct{ Type, Status string }
				ContainerStatuses []containerStatus
			}
		}
	}
	statusOf := func(pod, container string) *containerStatus {
		if err := kubeletGet("/pods", &pods); err != nil {
			return nil
		}
		for _, p := range pods.Items {
			if p.Metadata.Name != pod+"-berth-vm" {
				continue
			}
			for i, c := range p.Status.ContainerStatuses {
				if c.Name == container {
					return &p.Status.ContainerStatuses[i]
				}
			}
		}
		return nil
	}
	running := func(pod, container string) *runtimeapi.Container {
		var c *runtimeapi.Container
		waitUntil(t, pod+"/"+container+" running", 8*time.Minute, func() bool {
			c = kubeletContainer(t, pod, container)
			return c != nil && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
		})
		return c
	}

	waitUntil(t, "the probes pod ready", 5*time.Minute, func() bool {
		s := statusOf("probes", "web")
		return s != nil && s.Ready
	})
	main := running("init", "main")
	if out := execIn(t, main.Id, "cat", "/data/msg"); out != "prepared-by-init" {
		t.Errorf("the init container's work: %q", out)
	}
	waitUntil(t, "the crash pod restarted after exiting 3", 5*time.Minute, func() bool {
		s := statusOf("crash", "app")
		return s != nil && s.RestartCount >= 1 && s.LastState.Terminated != nil && s.LastState.Terminated.ExitCode == 3
	})
	a := running("sharedpid", "a")
	running("sharedpid", "b")
	if ps := execIn(t, a.Id, "ps"); !strings.Contains(ps, "sleep 3601") {
		t.Errorf("container a does not see b's process in the shared PID namespace:\n%s", ps)
	}
	hostnet := running("hostnet", "app")
	if ns, node := sh(t, "readlink", fmt.Sprintf("/proc/%d/ns/net", pidOf(t, hostnet.Id))), sh(t, "readlink", "/proc/1/ns/net"); ns != node {
		t.Errorf("the hostnet pod's network namespace %s, the node's %s", ns, node)
	}
	img := running("imagevolume", "app")
	execIn(t, img.Id, "test", "-x", "/img/bin/busybox")
	execIn(t, img.Id, "test", "-x", "/imgbin/busybox")
	limits := running("limits", "app")
	scope := "berth-" + limits.Id + ".scope"
	dir := filepath.Join(sliceDir(sh(t, "systemctl", "show", scope, "-p", "Slice", "--value")), scope)
	if b, _ := os.ReadFile(filepath.Join(dir, "memory.max")); strings.TrimSpace(string(b)) != "67108864" {
		t.Errorf("the limits pod's scope memory.max: %q", b)
	}
	running("graceful", "app")
	os.Remove("/etc/kubernetes/manifests/smoke-graceful.yaml")
	waitUntil(t, "the graceful pod stopped: its preStop hook, then SIGTERM", 3*time.Minute, func() bool {
		b, _ := os.ReadFile(filepath.Join(gracefulDir, "events"))
		return strings.Contains(string(b), "started\nprestop\nterm\n")
	})
}
