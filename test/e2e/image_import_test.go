package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// An image put into berth's containerd with ctr, as `kind load image-archive` and a kind node
// image's preload do (a record per tag, no id record, not unpacked with --no-unpack), is
// listed and runs: berth unpacks it through the record it has. (An image of layers no pulled
// image has, so that none of its snapshots is there before.)
func TestAnImageImportedWithCtrRuns(t *testing.T) {
	e := newContainerEnv(t, "imported")
	const ref = "example.test/imported/busybox:1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := tarball.Write(tag, testImages(t)["docker.io/berth/bench-pull:3"], &archive); err != nil {
		t.Fatal(err)
	}
	for _, unpack := range []string{"--no-unpack", ""} {
		t.Run("ctr import "+unpack, func(t *testing.T) {
			args := []string{"--address", filepath.Join(e.d.State, "containerd", "containerd.sock"), "--namespace", "berth",
				"images", "import", "--all-platforms", "--digests", "--snapshotter=overlayfs"}
			if unpack != "" {
				args = append(args, unpack)
			}
			cmd := exec.Command(tool(t, "ctr"), append(args, "-")...)
			cmd.Stdin = bytes.NewReader(archive.Bytes())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ctr import: %v\n%s", err, out)
			}
			if img := imageStatus(t, e.d.Image, ref); img == nil {
				t.Fatalf("ImageStatus(%s): not found after the import", ref)
			}
			id := e.run(t, "app"+unpack, func(c *runtimeapi.ContainerConfig) { c.Image.Image = ref })
			if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("container of the imported image: %v, want running", st.State)
			}
			client := containerdClient(t, e.d)
			if err := client.ImageService().Delete(ctx(t), ref); err != nil {
				t.Fatal(err)
			}
		})
	}
}
