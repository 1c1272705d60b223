package e2e

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// counterCommand counts in the shell's memory, writing each number to its log and to
// /tmp/count in its root file system, 20 a second.
var counterCommand = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo line$i; sleep 0.05; done"}

// checkpointedAt is how far counters count before they are checkpointed: far enough that one
// started afresh after the restore could not be there yet when the test looks.
const checkpointedAt = 60

// checkpointEnv is a berthd that restores checkpoint archives from archives, with a pod
// running a counter.
type checkpointEnv struct {
	*containerEnv
	archives string
	counter  string
}

func newCheckpointEnv(t *testing.T, podName string, mutate func(*runtimeapi.ContainerConfig)) *checkpointEnv {
	t.Helper()
	archives := t.TempDir()
	e := newContainerEnv(t, podName, "--restore-checkpoints", "--checkpoint-archive-dirs", archives)
	counter := e.run(t, "counter", func(c *runtimeapi.ContainerConfig) {
		c.Command = counterCommand
		if mutate != nil {
			mutate(c)
		}
	})
	ce := &checkpointEnv{containerEnv: e, archives: archives, counter: counter}
	ce.waitCount(t, counter, checkpointedAt)
	return ce
}

// count is the number the counter container id last wrote.
// The file is empty for a moment while the counter rewrites it.
func (e *containerEnv) count(t *testing.T, id string) int {
	t.Helper()
	for try := 0; ; try++ {
		n, err := strconv.Atoi(strings.TrimSpace(e.exec(t, id, "cat", "/tmp/count")))
		if err == nil {
			return n
		}
		if try == 10 {
			t.Fatalf("count: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *containerEnv) waitCount(t *testing.T, id string, atLeast int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n := e.count(t, id); n >= atLeast {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not count to %d", id, atLeast)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkpoint checkpoints container id to the archive name in e.archives.
func (e *checkpointEnv) checkpoint(t *testing.T, id, name string) string {
	t.Helper()
	path := filepath.Join(e.archives, name)
	start := time.Now()
	if _, err := e.d.Runtime.CheckpointContainer(ctx(t), &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: path, Timeout: 60}); err != nil {
		t.Fatalf("CheckpointContainer: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checkpoint: %v, archive %d KiB", time.Since(start).Round(time.Millisecond), fi.Size()>>10)
	return path
}

// tarEntries reads the names and contents (of files up to 1 MiB) of a tar archive.
func tarEntries(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var b []byte
		if hdr.Size <= 1<<20 {
			b, _ = io.ReadAll(tr)
		}
		out[hdr.Name] = b
	}
}

// A container counting in memory, checkpointed and restored into a new pod, goes on counting
// from where it was: the archive has what the kubelet's e2e test and checkpointctl look for,
// the original keeps running, and the restored container has the new pod's network and its
// log so far.
func TestCheckpointRestoreContainer(t *testing.T) {
	e := newCheckpointEnv(t, "checkpoint-source", nil)
	archive := e.checkpoint(t, e.counter, "counter.tar")

	entries := tarEntries(t, archive)
	for _, name := range []string{"spec.dump", "config.dump", "status.dump", "checkpoint/inventory.img", "rootfs-diff.tar", "container.log"} {
		if _, ok := entries[name]; !ok {
			t.Errorf("archive has no %s", name)
		}
	}
	at := checkpointedCount(t, archive)
	if st := e.status(t, e.counter); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the checkpointed container is %s, want running", st.State)
	}
	if n := e.waitCount(t, e.counter, at+2); n <= at {
		t.Fatalf("the checkpointed container stopped counting at %d", n)
	}

	// Into a new pod, once the first is gone.
	stopRemovePod(t, e.d, e.pod)
	cfg := podConfig("checkpoint-restored")
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.CgroupParent = "/berth-e2e/checkpoint-restored"
	pod := runPodEnv(t, e.d, cfg)
	start := time.Now()
	restored := pod.create(t, "counter", func(c *runtimeapi.ContainerConfig) { c.Image.Image = archive })
	pod.start(t, restored)
	t.Logf("restore: %v", time.Since(start).Round(time.Millisecond))
	n := pod.count(t, restored)
	if n < at || n > at+60 {
		t.Fatalf("the restored container counts %d; it was at %d when checkpointed", n, at)
	}
	if n2 := pod.waitCount(t, restored, n+2); n2 <= n {
		t.Fatalf("the restored container does not count on")
	}
	if ps := pod.exec(t, restored, "ps"); strings.Count(ps, "sh -c") != 1 {
		t.Errorf("the restored container's processes:\n%s", ps)
	}
	if ip := pod.exec(t, restored, "ip", "-4", "addr", "show", "eth0"); !strings.Contains(ip, podIP(t, pod.d, pod.pod)) {
		t.Errorf("the restored container is not in the new pod's network (%s):\n%s", podIP(t, pod.d, pod.pod), ip)
	}
	var lines []int
	for _, entry := range logEntries(t, filepath.Join(cfg.LogDirectory, "counter.log")) {
		if v, ok := strings.CutPrefix(entry[2], "line"); ok {
			if k, err := strconv.Atoi(v); err == nil {
				lines = append(lines, k)
			}
		}
	}
	if len(lines) == 0 || lines[0] != 1 || lines[len(lines)-1] <= at {
		t.Fatalf("the restored container's log holds lines %v; want from line1 past line%d", lines, at)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i] <= lines[i-1] {
			t.Fatalf("the restored container's log goes back: line%d after line%d", lines[i], lines[i-1])
		}
	}
}

func tarEntriesFromBytes(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return tarEntries(t, p)
}

// stopRemovePod stops and removes pod id.
func stopRemovePod(t *testing.T, d *daemon.Daemon, id string) {
	t.Helper()
	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// podIP is the IP pod id reports.
func podIP(t *testing.T, d *daemon.Daemon, id string) string {
	t.Helper()
	ip := podStatus(t, d, id).GetNetwork().GetIp()
	if ip == "" {
		t.Fatalf("pod %s has no IP", id)
	}
	return ip
}

// checkpointImageAnnotation marks an OCI image made from a checkpoint archive, as CRI-O's
// recipe (buildah) makes one.
const checkpointImageAnnotation = "io.kubernetes.cri-o.annotations.checkpoint.name"

// The kubelet's way to restore: a pod whose image is a checkpoint image, an OCI image with the
// archive as its one layer, pulled from a registry like any image. It restores and counts on.
func TestCheckpointRestoreFromAnImage(t *testing.T) {
	removeE2ECgroups(t)
	reg, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts, "--cni-conf-dir", podNetwork(t), "--restore-checkpoints")
	mustPull(t, d.Image, busyboxRef)
	cfg := podConfig("checkpoint-image-source")
	cfg.Linux.CgroupParent = "/berth-e2e/checkpoint-image-source"
	e := &checkpointEnv{containerEnv: runPodEnv(t, d, cfg), archives: t.TempDir()}
	e.counter = e.run(t, "counter", func(c *runtimeapi.ContainerConfig) { c.Command = counterCommand })
	e.waitCount(t, e.counter, checkpointedAt)
	archive := e.checkpoint(t, e.counter, "counter.tar")
	at := checkpointedCount(t, archive)

	layer, err := tarball.LayerFromFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{checkpointImageAnnotation: "counter"}).(v1.Image)
	ref := "registry.k8s.io/e2e-test-images/checkpoint-counter:1"
	if err := reg.Push(context.Background(), map[string]v1.Image{ref: img}); err != nil {
		t.Fatal(err)
	}
	mustPull(t, d.Image, ref)
	stopRemovePod(t, d, e.pod)

	pcfg := podConfig("checkpoint-image-restored")
	pcfg.Linux.CgroupParent = "/berth-e2e/checkpoint-image-restored"
	pod := runPodEnv(t, d, pcfg)
	restored := pod.run(t, "counter", func(c *runtimeapi.ContainerConfig) { c.Image.Image = ref })
	if n := pod.count(t, restored); n < at || n > at+60 {
		t.Fatalf("the container restored from the image counts %d; it was at %d when checkpointed", n, at)
	}
	st := pod.status(t, restored)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.Image.GetImage() != ref {
		t.Errorf("restored container: %s, image %q; want running, %q", st.State, st.Image.GetImage(), ref)
	}
}

// A two-container pod checkpointed with CheckpointPod (both frozen as one) and restored with
// RestorePod into a new pod: both containers go on counting from where they were. RestorePod
// refuses a checkpoint its request does not describe, and leaves nothing behind.
func TestCheckpointRestorePod(t *testing.T) {
	e := newCheckpointEnv(t, "checkpoint-pod-source", nil)
	second := e.run(t, "second", func(c *runtimeapi.ContainerConfig) { c.Command = counterCommand })
	e.waitCount(t, second, checkpointedAt/2)
	counterCfg := func(name string) *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name}, Image: &runtimeapi.ImageSpec{Image: busyboxRef},
			Command: counterCommand, LogPath: name + ".log",
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}}}
	}

	out := t.TempDir()
	for _, tc := range []struct {
		desc string
		req  *runtimeapi.CheckpointPodRequest
		text string
	}{
		{"options", &runtimeapi.CheckpointPodRequest{PodSandboxId: e.pod, OutputPath: out, ContainerIds: []string{e.counter}, Options: map[string]string{"x": "y"}}, "options"},
		{"a container twice", &runtimeapi.CheckpointPodRequest{PodSandboxId: e.pod, OutputPath: out, ContainerIds: []string{e.counter, e.counter}}, "twice"},
		{"a relative path", &runtimeapi.CheckpointPodRequest{PodSandboxId: e.pod, OutputPath: "out", ContainerIds: []string{e.counter}}, "absolute"},
		{"no container", &runtimeapi.CheckpointPodRequest{PodSandboxId: e.pod, OutputPath: out}, "container_ids"},
	} {
		_, err := e.d.Runtime.CheckpointPod(ctx(t), tc.req)
		wantCode(t, "CheckpointPod with "+tc.desc, err, codes.InvalidArgument, tc.text)
	}
	start := time.Now()
	if _, err := e.d.Runtime.CheckpointPod(ctx(t), &runtimeapi.CheckpointPodRequest{PodSandboxId: e.pod, OutputPath: out, ContainerIds: []string{e.counter, second}}); err != nil {
		t.Fatalf("CheckpointPod: %v", err)
	}
	t.Logf("pod checkpoint: %v", time.Since(start).Round(time.Millisecond))
	_, err := e.d.Runtime.CheckpointPod(ctx(t), &runtimeapi.CheckpointPodRequest{PodSandboxId: e.pod, OutputPath: out, ContainerIds: []string{e.counter}})
	wantCode(t, "CheckpointPod into a directory that is not empty", err, codes.InvalidArgument, "not empty")
	at := map[string]int{}
	for name, id := range map[string]string{"counter": e.counter, "second": second} {
		diff := tarEntries(t, filepath.Join(out, "containers", name, "rootfs-diff.tar"))
		if at[name], err = strconv.Atoi(strings.TrimSpace(string(diff["tmp/count"]))); err != nil {
			t.Fatalf("%s: rootfs-diff.tar: %v", name, err)
		}
		if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("%s is %s after the pod's checkpoint", name, st.State)
		}
	}
	stopRemovePod(t, e.d, e.pod)

	restoreReq := func(configs ...*runtimeapi.ContainerConfig) *runtimeapi.RestorePodRequest {
		cfg := podConfig("checkpoint-pod-restored")
		cfg.LogDirectory = t.TempDir()
		cfg.Linux.CgroupParent = "/berth-e2e/checkpoint-pod-restored"
		return &runtimeapi.RestorePodRequest{CheckpointPath: out, Config: cfg, ContainerConfigs: configs}
	}
	other := counterCfg("second")
	other.Command = []string{"sleep", "3600"}
	for _, tc := range []struct {
		desc string
		req  *runtimeapi.RestorePodRequest
		text string
	}{
		{"one container missing", restoreReq(counterCfg("counter")), "the checkpoint holds"},
		{"another command", restoreReq(counterCfg("counter"), other), "the checkpointed process ran"},
		{"options", func() *runtimeapi.RestorePodRequest {
			r := restoreReq(counterCfg("counter"), counterCfg("second"))
			r.Options = map[string]string{"x": "y"}
			return r
		}(), "options"},
	} {
		_, err := e.d.Runtime.RestorePod(ctx(t), tc.req)
		wantCode(t, "RestorePod with "+tc.desc, err, codes.InvalidArgument, tc.text)
	}
	if pods, _ := e.d.Runtime.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{}); len(pods.GetItems()) != 0 {
		t.Fatalf("failed restores left %d pods", len(pods.GetItems()))
	}

	req := restoreReq(counterCfg("counter"), counterCfg("second"))
	start = time.Now()
	resp, err := e.d.Runtime.RestorePod(ctx(t), req)
	if err != nil {
		t.Fatalf("RestorePod: %v", err)
	}
	t.Logf("pod restore (created): %v", time.Since(start).Round(time.Millisecond))
	pod := &containerEnv{d: e.d, pod: resp.PodSandboxId, podCfg: req.Config, logDir: req.Config.LogDirectory}
	if len(resp.RestoredContainers) != 2 {
		t.Fatalf("RestorePod made %v", resp.RestoredContainers)
	}
	for _, c := range resp.RestoredContainers {
		if st := pod.status(t, c.ContainerId); st.State != runtimeapi.ContainerState_CONTAINER_CREATED || st.Metadata.Name != c.Name {
			t.Fatalf("restored %s: %s %s, want created", c.Name, st.Metadata.Name, st.State)
		}
		pod.start(t, c.ContainerId)
	}
	for _, c := range resp.RestoredContainers {
		n := pod.count(t, c.ContainerId)
		if n < at[c.Name] || n > at[c.Name]+60 {
			t.Errorf("restored %s counts %d; it was at %d when checkpointed", c.Name, n, at[c.Name])
		}
		pod.waitCount(t, c.ContainerId, n+2)
	}
}

// checkpointedCount is what a counter had written when it was checkpointed into archive: its
// /tmp/count in the archive's root file system changes, of the same moment as its memory.
func checkpointedCount(t *testing.T, archive string) int {
	t.Helper()
	diff := tarEntriesFromBytes(t, tarEntries(t, archive)["rootfs-diff.tar"])
	at, err := strconv.Atoi(strings.TrimSpace(string(diff["tmp/count"])))
	if err != nil {
		t.Fatalf("%s: rootfs-diff.tar: tmp/count: %q: %v", archive, diff["tmp/count"], err)
	}
	return at
}

// A berthd killed while it checkpoints a container leaves it frozen: the next berthd thaws it.
func TestCheckpointFrozenContainerThawedAfterARestart(t *testing.T) {
	e := newContainerEnv(t, "checkpoint-frozen")
	id := e.run(t, "counter", func(c *runtimeapi.ContainerConfig) { c.Command = counterCommand })
	e.waitCount(t, id, 2)
	if err := e.d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	client := containerdClient(t, e.d)
	task := func() containerd.Task {
		c, err := client.LoadContainer(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := c.Task(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	if err := task().Pause(context.Background()); err != nil { // as a killed checkpoint leaves it
		t.Fatal(err)
	}
	if err := e.d.Run(); err != nil {
		t.Fatal(err)
	}
	e.status(t, id) // answered once berthd has loaded its containers
	if st, err := task().Status(context.Background()); err != nil || st.Status != containerd.Running {
		t.Fatalf("after berthd's restart the container's task is %v (%v), want running", st.Status, err)
	}
	n := e.count(t, id)
	e.waitCount(t, id, n+2)
}
