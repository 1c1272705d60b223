package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/moby/sys/mountinfo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/images"
)

// An image volume (the kubelet's `image` volume source): the image's files, its layers'
// deletions applied, read-only in the container, a directory of it by image_sub_path; the image
// is mounted once for the pod, and nothing of it is left once the pod is gone.
func TestImageVolumes(t *testing.T) {
	e := newContainerEnv(t, "image-volume")
	imageID := mustPull(t, e.d.Image, images.WhiteoutsRef)
	volume := func(path, sub string) *runtimeapi.Mount {
		return &runtimeapi.Mount{ContainerPath: path, Readonly: true, ImageSubPath: sub,
			Image: &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: images.WhiteoutsRef}}
	}
	ids := map[string]string{}
	for _, name := range []string{"first", "second"} {
		ids[name] = e.run(t, name, func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{volume("/vol", ""), volume("/data", "data")}
		})
	}
	script := `for f in /vol/data/kept /vol/data/late /vol/opaque/new /data/kept; do [ -e $f ] || echo "missing $f"; done
for f in /vol/data/gone /vol/opaque/old /vol/opaque/sub /data/gone; do [ -e $f ] && echo "present $f"; done
touch /vol/written 2>/dev/null && echo "wrote into the image volume"; true`
	for name, id := range ids {
		if out := e.exec(t, id, "sh", "-c", script); out != "" {
			t.Errorf("%s sees in its image volumes:\n%s", name, out)
		}
	}

	st := e.status(t, ids["first"])
	var found int
	for _, m := range st.GetMounts() {
		if m.GetImage() == nil {
			continue
		}
		found++
		if m.GetImage().GetImageRef() != imageID || m.GetImage().GetImage() != imageID || m.GetHostPath() != "" {
			t.Errorf("ContainerStatus mount %s: image %+v, host path %q; want image_ref %s and no host path", m.GetContainerPath(), m.GetImage(), m.GetHostPath(), imageID)
		}
	}
	if found != 2 {
		t.Errorf("ContainerStatus reports %d image mounts, want 2", found)
	}
	podDir := filepath.Join(e.d.State, "pods", e.pod)
	if n := mountsUnder(t, podDir+"/image-volumes/"); n != 1 {
		t.Errorf("%d image volume mounts for the pod's two containers, want one", n)
	}

	tests := []struct {
		desc  string
		mount *runtimeapi.Mount
		code  codes.Code
	}{
		{"writable", &runtimeapi.Mount{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: imageID}}, codes.InvalidArgument},
		{"host path too", &runtimeapi.Mount{ContainerPath: "/vol", HostPath: "/tmp", Readonly: true, Image: &runtimeapi.ImageSpec{Image: imageID}}, codes.InvalidArgument},
		{"image not pulled", &runtimeapi.Mount{ContainerPath: "/vol", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "example.com/never/pulled:1"}}, codes.NotFound},
		{"sub path not in the image", volume("/vol", "no/such/dir"), codes.NotFound},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			_, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "bad"}, Image: &runtimeapi.ImageSpec{Image: busyboxRef},
					Command: []string{"true"}, Mounts: []*runtimeapi.Mount{test.mount}}})
			// The kubelet counts an image volume's failure by this prefix of the message.
			if status.Code(err) != test.code || !strings.HasPrefix(status.Convert(err).Message(), "ImageVolumeMountFailed") {
				t.Errorf("CreateContainer = %v; want %s starting with ImageVolumeMountFailed", err, test.code)
			}
		})
	}

	if _, err := e.d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	if n := mountsUnder(t, podDir); n != 0 {
		t.Errorf("%d mounts left in the removed pod's directory", n)
	}
	client := containerdClient(t, e.d)
	if err := client.SnapshotService("overlayfs").Walk(ctx(t), func(_ context.Context, info snapshots.Info) error {
		if strings.Contains(info.Name, e.pod) {
			t.Errorf("snapshot %s left after the pod was removed", info.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ls, err := client.LeasesService().List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if strings.Contains(l.ID, e.pod) {
			t.Errorf("lease %s left after the pod was removed", l.ID)
		}
	}
}

// mountsUnder counts the mounts at or below dir on the node.
func mountsUnder(t *testing.T, dir string) int {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Clean(dir)))
	if err != nil {
		t.Fatal(err)
	}
	return len(mounts)
}
