package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/images"
)

// Images that replay the peers' advisories (test/images/advisory.go): whatever berth makes of
// them, the node is untouched.
func TestAdvisoryHostileImages(t *testing.T) {
	metrics := freeAddress(t)
	e := newContainerEnv(t, "advisory-images", "--metrics-address", metrics)
	for _, ref := range []string{images.AdvisoryLabels, images.AdvisoryEndlessPasswd, images.AdvisoryVolumes, images.AdvisoryEtcSymlink, images.AdvisoryDevSymlink} {
		mustPull(t, e.d.Image, ref)
	}
	for _, p := range []string{images.AdvisoryVolumeTarget, images.AdvisoryVolumeTarget + "-link", images.AdvisoryVolumeTarget + "-abs", images.AdvisoryEtcTarget, images.AdvisoryDevTarget} {
		os.RemoveAll(p)
	}
	client := containerdClient(t, e.d)

	// containerd's GHSA-xhf5-7wjv-pqxp: an image's config labels reach no containerd record.
	t.Run("labels", func(t *testing.T) {
		id := e.run(t, "labels", func(c *runtimeapi.ContainerConfig) { c.Image.Image = images.AdvisoryLabels })
		img, err := client.GetImage(ctx(t), images.AdvisoryLabels)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.LoadContainer(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, labels := range []map[string]string{img.Labels(), info.Labels} {
			for k, v := range labels {
				if strings.HasPrefix(k, "containerd.io/restart") || k == "io.cri-containerd.image" || v == "sandbox" ||
					k == "io.containerd.image.config.stop-signal" || strings.HasPrefix(v, "sha256:0000") {
					t.Errorf("a containerd record has the image's label %s=%s", k, v)
				}
			}
		}
		if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %v", st.State)
		}
	})

	// containerd's GHSA-jpcc-p29g-p8mq: an /etc/passwd and /etc/group that never end are read
	// within a bound: CreateContainer answers soon, and berthd's memory stays where it was.
	t.Run("endless passwd", func(t *testing.T) {
		before := usageOf(t, e.d, metrics)
		start := time.Now()
		resp, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "endless"}, Image: &runtimeapi.ImageSpec{Image: images.AdvisoryEndlessPasswd}}})
		took := time.Since(start)
		after := usageOf(t, e.d, metrics)
		t.Logf("CreateContainer of an image whose /etc/passwd never ends: %v after %s; berthd RSS %d -> %d KiB", err, took.Round(time.Millisecond), before.rssKiB, after.rssKiB)
		if took > 20*time.Second {
			t.Errorf("CreateContainer took %s", took)
		}
		if err == nil {
			e.start(t, resp.ContainerId)
		}
		if grew := after.rssKiB - before.rssKiB; grew > 64<<10 {
			t.Errorf("berthd's resident memory grew by %d MiB", grew>>10)
		}
	})

	// containerd's GHSA-crp2-qrr5-8pq7 (image volumes out of the root), CRI-O's
	// GHSA-j9hf-98c3-wrm8 (the pod's files mounted through an /etc symlink) and runc's
	// GHSA-xjvp-4fhw-gc47 (devices made through a /dev symlink): the containers run or are
	// refused, and nothing appears on the node.
	for _, ref := range []string{images.AdvisoryVolumes, images.AdvisoryEtcSymlink, images.AdvisoryDevSymlink} {
		t.Run(filepath.Base(ref), func(t *testing.T) {
			resp, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: strings.NewReplacer("/", "-", ":", "-").Replace(filepath.Base(ref))},
					Image: &runtimeapi.ImageSpec{Image: ref}}})
			if err == nil {
				_, err = e.d.Runtime.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId})
			}
			t.Logf("%s: %v", ref, err)
		})
	}
	for _, p := range []string{images.AdvisoryVolumeTarget, images.AdvisoryVolumeTarget + "-link", images.AdvisoryVolumeTarget + "-abs", images.AdvisoryEtcTarget, images.AdvisoryDevTarget} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was made on the node", p)
			os.RemoveAll(p)
		}
	}
}
