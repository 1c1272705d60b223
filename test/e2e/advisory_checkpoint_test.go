package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// rewriteArchive copies the checkpoint archive src to name in dir, passing each file through
// edit (which may change it, or drop it by returning nil) and then adding extra entries.
func rewriteArchive(t *testing.T, src, dir, name string, edit func(name string, body []byte) []byte, extra ...*tar.Header) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(in)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if hdr.Typeflag == tar.TypeReg && edit != nil {
			if body = edit(hdr.Name, body); body == nil {
				continue
			}
			hdr.Size = int64(len(body))
		}
		tw.WriteHeader(hdr)
		tw.Write(body)
	}
	for _, h := range extra {
		tw.WriteHeader(h)
	}
	tw.Close()
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// editJSON edits the JSON document body through a map.
func editJSON(t *testing.T, body []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// restoreInNewPod creates (not starts) a container from the checkpoint image in a new pod.
func (e *checkpointEnv) restoreInNewPod(t *testing.T, podName, image string, mutate func(*runtimeapi.ContainerConfig)) (*containerEnv, string, error) {
	t.Helper()
	cfg := podConfig(podName)
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.CgroupParent = "/berth-e2e/" + podName
	pod := runPodEnv(t, e.d, cfg)
	ccfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "counter"},
		Image:    &runtimeapi.ImageSpec{Image: image},
		LogPath:  "counter.log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
	if mutate != nil {
		mutate(ccfg)
	}
	resp, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.pod, Config: ccfg, SandboxConfig: cfg})
	return pod, resp.GetContainerId(), err
}

func wantCode(t *testing.T, what string, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), text) {
		t.Errorf("%s: %v; want %s naming %q", what, err, code, text)
	}
}

// A checkpoint archive to restore is hostile input. The peers' advisories, each replayed:
//   - containerd's GHSA-33vj-92qq-66hc: CDI annotations in the archive's metadata reached the
//     restored container's devices. CRI-O's CVE-2024-8676: the archive's mounts were restored
//     instead of the request's, so a pod got host mounts it could not ask for.
//   - containerd's GHSA-rgh6-rfwx-v388: the archive's container.log was a link, followed on
//     the node, copying a node file into the pod's log.
//   - containerd's GHSA-cvxm-645q-p574: the restore tagged the base image on the node with the
//     name the archive gave, poisoning a tag other pods pull by.
//   - containerd's GHSA-p7v4-vr35-mj6f: the restore pulled the base image the archive named,
//     with the node's credentials.
//   - and what CRIU restores from the archive, not the spec: a root task into a container that
//     runs as a user without capabilities.
func TestAdvisoryCheckpointArchives(t *testing.T) {
	e := newCheckpointEnv(t, "advisory-checkpoint-source", nil)
	archive := e.checkpoint(t, e.counter, "counter.tar")

	t.Run("the request's annotations, labels and mounts, not the archive's", func(t *testing.T) {
		a := rewriteArchive(t, archive, e.archives, "smuggled.tar", func(name string, body []byte) []byte {
			switch name {
			case "spec.dump":
				return editJSON(t, body, func(m map[string]any) {
					m["annotations"] = map[string]any{"cdi.k8s.io/smuggled": "vendor.example/device=all", "org.systemd.property.CPUQuota": "1%"}
					m["mounts"] = append(m["mounts"].([]any), map[string]any{"destination": "/host", "type": "bind", "source": "/", "options": []any{"rbind", "rw"}})
				})
			case "status.dump":
				return editJSON(t, body, func(m map[string]any) {
					m["annotations"] = map[string]any{"cdi.k8s.io/smuggled": "vendor.example/device=all"}
					m["labels"] = map[string]any{"io.kubernetes.pod.namespace": "kube-system"}
					m["mounts"] = []any{map[string]any{"container_path": "/host", "host_path": "/"}}
				})
			}
			return body
		})
		pod, id, err := e.restoreInNewPod(t, "advisory-checkpoint-smuggled", a, func(c *runtimeapi.ContainerConfig) {
			c.Annotations = map[string]string{"requested": "yes"}
			c.Labels = map[string]string{"app": "restored"}
		})
		if err != nil {
			t.Fatalf("CreateContainer from the archive: %v", err)
		}
		pod.start(t, id)
		spec := containerSpec(t, e.d, id)
		for k := range spec.Annotations {
			if strings.HasPrefix(k, "cdi.k8s.io/") || strings.HasPrefix(k, "org.systemd.property.") {
				t.Errorf("the archive's annotation %s reached the spec", k)
			}
		}
		for _, m := range spec.Mounts {
			if m.Destination == "/host" {
				t.Errorf("the archive's mount of %s reached the spec", m.Source)
			}
		}
		if out := pod.exec(t, id, "sh", "-c", "ls /host 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("/host in the restored container: %s", out)
		}
		st := pod.status(t, id)
		if st.Annotations["requested"] != "yes" || st.Annotations["cdi.k8s.io/smuggled"] != "" || st.Labels["io.kubernetes.pod.namespace"] != "" || len(st.Mounts) != 0 {
			t.Errorf("the restored container reports annotations %v, labels %v, mounts %v: want the request's", st.Annotations, st.Labels, st.Mounts)
		}
	})

	t.Run("a container.log that links to a node file", func(t *testing.T) {
		a := rewriteArchive(t, archive, e.archives, "log-link.tar", func(name string, body []byte) []byte {
			if name == "container.log" {
				return nil
			}
			return body
		}, &tar.Header{Name: "container.log", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow", Mode: 0o777})
		pod, _, err := e.restoreInNewPod(t, "advisory-checkpoint-loglink", a, nil)
		wantCode(t, "CreateContainer from an archive whose log is a link", err, codes.InvalidArgument, "symbolic link")
		if b, err := os.ReadFile(filepath.Join(pod.logDir, "counter.log")); err == nil {
			t.Errorf("the pod's log was written: %q", b)
		}
	})

	t.Run("the archive's image name is not tagged on the node", func(t *testing.T) {
		a := rewriteArchive(t, archive, e.archives, "tag.tar", func(name string, body []byte) []byte {
			if name == "config.dump" {
				return editJSON(t, body, func(m map[string]any) { m["rootfsImageName"] = "registry.example/victim:latest" })
			}
			return body
		})
		pod, id, err := e.restoreInNewPod(t, "advisory-checkpoint-tag", a, nil)
		if err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		pod.start(t, id)
		list, err := e.d.Image.ListImages(ctx(t), &runtimeapi.ListImagesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range list.Images {
			for _, tag := range img.RepoTags {
				if strings.Contains(tag, "victim") {
					t.Errorf("the restore tagged %s as %s", img.Id, tag)
				}
			}
		}
	})

	t.Run("a base image not on the node is not pulled", func(t *testing.T) {
		var requests atomic.Int32
		reg, _ := serveImages(t, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				h.ServeHTTP(w, r)
			})
		})
		ref := reg.Addr + "/e2e-test-images/nginx@sha256:" + strings.Repeat("ab", 32)
		a := rewriteArchive(t, archive, e.archives, "pull.tar", func(name string, body []byte) []byte {
			if name == "config.dump" {
				return editJSON(t, body, func(m map[string]any) { m["rootfsImageRef"], m["rootfsImageName"] = ref, ref })
			}
			return body
		})
		_, _, err := e.restoreInNewPod(t, "advisory-checkpoint-pull", a, nil)
		wantCode(t, "CreateContainer from an archive of an image not on the node", err, codes.FailedPrecondition, "pull it first")
		if n := requests.Load(); n != 0 {
			t.Errorf("the restore made %d requests to the registry the archive named", n)
		}
	})

	t.Run("root tasks into a container that runs as a user without capabilities", func(t *testing.T) {
		_, _, err := e.restoreInNewPod(t, "advisory-checkpoint-creds", archive, func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{
				RunAsUser: &runtimeapi.Int64Value{Value: 1000}, Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"ALL"}},
			}
		})
		wantCode(t, "CreateContainer of a non-root container from a root checkpoint", err, codes.InvalidArgument, "runs as user 0")
	})

	t.Run("archives only from checkpoint-archive-dirs", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "outside.tar")
		b, _ := os.ReadFile(archive)
		os.WriteFile(outside, b, 0o600)
		_, _, err := e.restoreInNewPod(t, "advisory-checkpoint-outside", outside, nil)
		wantCode(t, "CreateContainer from an archive outside checkpoint-archive-dirs", err, codes.PermissionDenied, "checkpoint-archive-dirs")
		link := filepath.Join(e.archives, "link.tar")
		os.Symlink(outside, link)
		_, _, err = e.restoreInNewPod(t, "advisory-checkpoint-link", link, nil)
		wantCode(t, "CreateContainer from a link in checkpoint-archive-dirs to an archive outside", err, codes.PermissionDenied, "checkpoint-archive-dirs")
	})
}

// With restore-checkpoints off (the default), no checkpoint is restored: the checkpoint still
// works.
func TestCheckpointRestoreIsOffByDefault(t *testing.T) {
	e := newContainerEnv(t, "checkpoint-off")
	id := e.run(t, "counter", func(c *runtimeapi.ContainerConfig) { c.Command = counterCommand })
	e.waitCount(t, id, 2)
	archive := filepath.Join(t.TempDir(), "counter.tar")
	if _, err := e.d.Runtime.CheckpointContainer(ctx(t), &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive}); err != nil {
		t.Fatalf("CheckpointContainer: %v", err)
	}
	_, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "restored"}, Image: &runtimeapi.ImageSpec{Image: archive}}})
	wantCode(t, "CreateContainer from an archive", err, codes.FailedPrecondition, "restore-checkpoints")
	for _, tc := range []struct {
		req  *runtimeapi.CheckpointContainerRequest
		code codes.Code
		text string
	}{
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id}, codes.InvalidArgument, "location"},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: "relative.tar"}, codes.InvalidArgument, "absolute"},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: "nope", Location: archive}, codes.NotFound, "nope"},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: "/no/such/dir/a.tar"}, codes.InvalidArgument, "/no/such/dir"},
	} {
		_, err := e.d.Runtime.CheckpointContainer(ctx(t), tc.req)
		wantCode(t, "CheckpointContainer", err, tc.code, tc.text)
	}
	stopped := e.run(t, "stopped", func(c *runtimeapi.ContainerConfig) { c.Command = []string{"true"} })
	e.waitExit(t, stopped)
	_, err = e.d.Runtime.CheckpointContainer(ctx(t), &runtimeapi.CheckpointContainerRequest{ContainerId: stopped, Location: archive + "2"})
	wantCode(t, "CheckpointContainer of an exited container", err, codes.FailedPrecondition, "only a running container")
}
