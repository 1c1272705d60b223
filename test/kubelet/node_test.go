package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

// The smoke node's pod network, apart from the e2e tests' and the benchmark's.
const (
	network = "berth-kubelet"
	bridge  = "berthkube0"
	subnet  = "10.97.0.0/16"
)

// busybox is the busybox of Kubernetes' own e2e suites, built here (test/images).
const busybox = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"

// node is a berthd with a kubelet in front of it, and the registry its images come from.
type node struct {
	d   *daemon.Daemon
	k   *daemon.Kubelet
	reg *images.Registry
}

// startNode serves the test images on loopback, starts berthd (mirroring registry.k8s.io to
// them) and a kubelet on its socket, with kubeletArgs added; everything goes when the test ends,
// pods first.
func startNode(t *testing.T, kubeletArgs ...string) *node {
	t.Helper()
	return startNodeWith(t, nil, kubeletArgs...)
}

// startNodeWith is startNode with berthdArgs added to berthd's.
func startNodeWith(t *testing.T, berthdArgs []string, kubeletArgs ...string) *node {
	t.Helper()
	reg, hosts := serveImages(t)
	cniDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cniDir, "10-kubelet.conflist"), []byte(daemon.CNIConflist(network, bridge, subnet)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "delete", bridge).Run()
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", network))
	})
	d, err := daemon.Start(append([]string{"--registry-config-dir", hosts, "--cni-conf-dir", cniDir}, berthdArgs...)...)
	if err != nil {
		t.Fatalf("start berthd: %v", err)
	}
	n := &node{d: d, reg: reg}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("berthd logs (last 20000 bytes):\n%s", last(d.Logs(), 20000))
		}
		d.Cleanup()
	})
	k, err := daemon.StartKubelet(daemon.KubeletOptions{Endpoint: d.Endpoint(), Args: kubeletArgs})
	if k != nil {
		n.k = k
		t.Cleanup(func() {
			n.removeAllPods(t)
			if t.Failed() {
				t.Logf("kubelet logs (last 30000 bytes):\n%s", last(k.Logs(), 30000))
			}
			k.Cleanup()
		})
	}
	if err != nil {
		t.Fatalf("start kubelet: %v", err)
	}
	return n
}

// serveImages serves the test images on loopback and returns the registry and a registry
// config directory that mirrors the public registries to it.
func serveImages(t *testing.T) (*images.Registry, string) {
	t.Helper()
	reg, _, err := images.Serve("../..", t.TempDir(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	dir := t.TempDir()
	if err := reg.WriteHostsDir(dir); err != nil {
		t.Fatal(err)
	}
	return reg, dir
}

// removeAllPods removes every static pod and waits (bounded) until the kubelet has stopped
// their containers, so that the kubelet leaves nothing running behind it.
func (n *node) removeAllPods(t *testing.T) {
	entries, _ := os.ReadDir(n.k.Manifests)
	for _, e := range entries {
		os.Remove(filepath.Join(n.k.Manifests, e.Name()))
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := n.d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
			State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
		cancel()
		if err != nil || len(resp.Items) == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the kubelet had not stopped every pod within 60s of their manifests' removal")
}

// podName is the kubelet's name of static pod name on this node.
func (n *node) podName(name string) string { return name + "-" + n.k.NodeName }

// containers lists the CRI containers of static pod pod named name (every attempt), newest
// attempt first.
func (n *node) containers(t *testing.T, pod, name string) []*runtimeapi.Container {
	t.Helper()
	labels := map[string]string{"io.kubernetes.pod.name": n.podName(pod)}
	if name != "" {
		labels["io.kubernetes.container.name"] = name
	}
	resp, err := n.d.Runtime.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: labels}})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	items := resp.Containers
	for i := range items {
		for j := i + 1; j < len(items); j++ {
			if items[j].Metadata.Attempt > items[i].Metadata.Attempt {
				items[i], items[j] = items[j], items[i]
			}
		}
	}
	return items
}

// running returns the running container named name of static pod pod, waiting up to timeout.
func (n *node) running(t *testing.T, pod, name string, timeout time.Duration) *runtimeapi.Container {
	t.Helper()
	var found *runtimeapi.Container
	waitFor(t, timeout, fmt.Sprintf("container %s of pod %s running", name, pod), func() (bool, string) {
		cs := n.containers(t, pod, name)
		for _, c := range cs {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				found = c
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d containers: %v", len(cs), cs)
	})
	return found
}

func (n *node) status(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := n.d.Runtime.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus(%s): %v", id, err)
	}
	return resp.Status
}

// execSync runs cmd in container id through the CRI and returns its stdout.
func (n *node) execSync(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	resp, err := n.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil || resp.ExitCode != 0 {
		t.Fatalf("ExecSync(%q) = %v, %v", cmd, resp, err)
	}
	return string(resp.Stdout)
}

// kubeletExec runs cmd in a container through the kubelet's exec API (SPDY, as the API server
// does), which the kubelet serves through berth's streaming server.
func (n *node) kubeletExec(t *testing.T, pod, container string, cmd ...string) (string, string, error) {
	t.Helper()
	q := url.Values{"output": {"1"}, "error": {"1"}, "command": cmd}
	u, err := url.Parse(n.k.URL(fmt.Sprintf("/exec/default/%s/%s?%s", n.podName(pod), container, q.Encode())))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := remotecommand.NewSPDYExecutor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(ctx(t), remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	return stdout.String(), stderr.String(), err
}

// kubeletLogs reads a container's log through the kubelet's API, as `kubectl logs` does.
func (n *node) kubeletLogs(t *testing.T, pod, container string) string {
	t.Helper()
	out, err := n.k.Get(ctx(t), fmt.Sprintf("/containerLogs/default/%s/%s", n.podName(pod), container))
	if err != nil {
		t.Fatalf("kubelet logs of %s/%s: %v", pod, container, err)
	}
	return out
}

// metric sums the samples of the kubelet's metric name, served at path (/metrics,
// /metrics/probes), whose line has every one of parts.
func (n *node) metric(t *testing.T, path, name string, parts ...string) float64 {
	t.Helper()
	text, err := n.k.Get(ctx(t), path)
	if err != nil {
		t.Fatalf("kubelet metrics: %v", err)
	}
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitFor polls cond until it holds or timeout passes, then fails with its last word.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func last(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
