package kubelet

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// counterPod counts in its shell's memory, writing each number to /tmp/count; %[1]s is its
// name, %[2]s its image.
const counterPod = `apiVersion: v1
kind: Pod
metadata: {name: %[1]s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: counter
    image: %[2]s
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done']
`

// A container counting in memory, checkpointed through the kubelet's API (ContainerCheckpoint,
// on by default) and restored into a new pod from a checkpoint image, goes on counting from
// where it was: the operator's path, kubelet to berth and back.
func TestKubeletCheckpointAndRestore(t *testing.T) {
	n := startNodeWith(t, []string{"--restore-checkpoints"})
	if err := n.k.AddPod("counter", fmt.Sprintf(counterPod, "counter", busybox)); err != nil {
		t.Fatal(err)
	}
	c := n.running(t, "counter", "counter", 90*time.Second)
	count := func(id string) int { // the file is empty for a moment while the counter rewrites it
		for try := 0; ; try++ {
			v, err := strconv.Atoi(strings.TrimSpace(n.execSync(t, id, "cat", "/tmp/count")))
			if err == nil {
				return v
			}
			if try == 10 {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(t, 20*time.Second, "the counter counting", func() (bool, string) { v := count(c.Id); return v >= 60, fmt.Sprint(v) })

	start := time.Now()
	c2, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := n.k.Post(c2, fmt.Sprintf("/checkpoint/default/%s/counter", n.podName("counter")))
	if err != nil {
		t.Fatalf("the kubelet's checkpoint API: %v", err)
	}
	var answer struct{ Items []string }
	if err := json.Unmarshal([]byte(out), &answer); err != nil || len(answer.Items) != 1 {
		t.Fatalf("the kubelet's checkpoint API answered %q (%v)", out, err)
	}
	at := checkpointedCount(t, answer.Items[0])
	t.Logf("checkpoint through the kubelet: %v, %s", time.Since(start).Round(time.Millisecond), answer.Items[0])

	layer, err := tarball.LayerFromFile(answer.Items[0])
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{"io.kubernetes.cri-o.annotations.checkpoint.name": "counter"}).(v1.Image)
	ref := "registry.k8s.io/e2e-test-images/checkpoint-counter:1"
	if err := n.reg.Push(context.Background(), map[string]v1.Image{ref: img}); err != nil {
		t.Fatal(err)
	}
	if err := n.k.RemovePod("counter"); err != nil {
		t.Fatal(err)
	}
	if err := n.k.AddPod("restored", fmt.Sprintf(counterPod, "restored", ref)); err != nil {
		t.Fatal(err)
	}
	r := n.running(t, "restored", "counter", 90*time.Second)
	v := count(r.Id)
	t.Logf("restored through the kubelet: counts %d, was at %d", v, at)
	if v < at || v > at+60 {
		t.Fatalf("the restored container counts %d; it was at %d when checkpointed (one started afresh would be below 60)", v, at)
	}
	waitFor(t, 20*time.Second, "the restored counter counting on", func() (bool, string) { w := count(r.Id); return w > v, fmt.Sprint(w) })
}

// checkpointedCount is the counter's /tmp/count in the checkpoint archive's root file system
// changes: what it had counted when it was frozen.
func checkpointedCount(t *testing.T, archive string) int {
	t.Helper()
	diff := tarFile(t, tarFile(t, mustRead(t, archive), "rootfs-diff.tar"), "tmp/count")
	v, err := strconv.Atoi(strings.TrimSpace(string(diff)))
	if err != nil {
		t.Fatalf("%s: tmp/count %q: %v", archive, diff, err)
	}
	return v
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tarFile is the content of file name in the tar archive b.
func tarFile(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the archive: %v", name, err)
		}
		if hdr.Name == name {
			out, _ := io.ReadAll(tr)
			return out
		}
	}
}
