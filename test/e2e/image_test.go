package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/images"
)

const (
	busyboxRef = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	tagsRef    = "gcr.io/k8s-staging-cri-tools/test-image-tags"
)

var (
	catalogOnce sync.Once
	catalog     map[string]v1.Image
	catalogErr  error
)

// testImages builds the offline image catalog once per test run.
func testImages(t *testing.T) map[string]v1.Image {
	t.Helper()
	catalogOnce.Do(func() {
		var busybox, testbin, dir string
		if busybox, catalogErr = images.BusyboxPath(); catalogErr != nil {
			return
		}
		if dir, catalogErr = os.MkdirTemp("", "berth-images-"); catalogErr != nil {
			return
		}
		defer os.RemoveAll(dir)
		if testbin, catalogErr = images.BuildTestBin("../..", dir); catalogErr != nil {
			return
		}
		catalog, catalogErr = images.Catalog(images.Sources{Busybox: busybox, TestBin: testbin})
	})
	if catalogErr != nil {
		t.Fatalf("build test images: %v", catalogErr)
	}
	return catalog
}

// serveImages starts a loopback registry with the test images, wrapped by wrap when not nil, and
// returns it with a registry config directory that mirrors every upstream to it.
func serveImages(t *testing.T, wrap func(http.Handler) http.Handler) (*images.Registry, string) {
	t.Helper()
	cat := testImages(t)
	reg, err := images.StartRegistry("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if err := reg.Push(context.Background(), cat); err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		// Serve the same content behind the wrapper.
		reg = proxyRegistry(t, reg, wrap)
	}
	dir := t.TempDir()
	if err := reg.WriteHostsDir(dir); err != nil {
		t.Fatal(err)
	}
	return reg, dir
}

// proxyRegistry serves what reg holds through wrap on another loopback port.
func proxyRegistry(t *testing.T, reg *images.Registry, wrap func(http.Handler) http.Handler) *images.Registry {
	t.Helper()
	target := "http://" + reg.Addr
	front, err := images.StartRegistry("", func(http.Handler) http.Handler {
		return wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
			req.Header = r.Header.Clone()
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			buf := make([]byte, 32*1024)
			for {
				n, err := resp.Body.Read(buf)
				w.Write(buf[:n])
				if err != nil {
					return
				}
			}
		}))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	return front
}

func pull(t *testing.T, is runtimeapi.ImageServiceClient, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	t.Helper()
	resp, err := is.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	return resp.GetImageRef(), err
}

func mustPull(t *testing.T, is runtimeapi.ImageServiceClient, ref string) string {
	t.Helper()
	id, err := pull(t, is, ref, nil)
	if err != nil {
		t.Fatalf("PullImage(%s): %v", ref, err)
	}
	return id
}

func imageStatus(t *testing.T, is runtimeapi.ImageServiceClient, ref string) *runtimeapi.Image {
	t.Helper()
	resp, err := is.ImageStatus(ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus(%s): %v", ref, err)
	}
	return resp.Image
}

func TestPullByTagDigestAndBoth(t *testing.T) {
	_, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts)

	id := mustPull(t, d.Image, busyboxRef)
	img := imageStatus(t, d.Image, busyboxRef)
	if img == nil || img.Id != id {
		t.Fatalf("ImageStatus(%s) = %v, want id %s", busyboxRef, img, id)
	}
	if !slices.Equal(img.RepoTags, []string{busyboxRef}) || len(img.RepoDigests) != 1 {
		t.Fatalf("RepoTags %v, RepoDigests %v; want the tag and one digest", img.RepoTags, img.RepoDigests)
	}
	repoDigest := img.RepoDigests[0]
	dgst := repoDigest[strings.Index(repoDigest, "@"):]
	if img.Size == 0 {
		t.Error("image size is 0")
	}

	tests := []struct{ desc, ref string }{
		{"by id", id},
		{"by id hex", strings.TrimPrefix(id, "sha256:")},
		{"by repo digest", repoDigest},
		{"by tag and digest", busyboxRef + dgst},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if got := imageStatus(t, d.Image, test.ref); got == nil || got.Id != id {
				t.Errorf("ImageStatus(%s) = %v, want id %s", test.ref, got, id)
			}
		})
	}
	// Pull by digest, and by tag and digest, of an image not yet there.
	if _, err := d.Image.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id}}); err != nil {
		t.Fatal(err)
	}
	if got := imageStatus(t, d.Image, id); got != nil {
		t.Fatalf("image still there after RemoveImage by id: %v", got)
	}
	for _, ref := range []string{repoDigest, busyboxRef + dgst} {
		if got := mustPull(t, d.Image, ref); got != id {
			t.Errorf("PullImage(%s) = %s, want %s", ref, got, id)
		}
	}

	// ListImages, whole and filtered.
	list, err := d.Image.ListImages(ctx(t), &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 {
		t.Fatalf("ListImages = %v, %v; want one image", list, err)
	}
	list, err = d.Image.ListImages(ctx(t), &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/e2e-test-images/nginx:1.14-2"}}})
	if err != nil || len(list.Images) != 0 {
		t.Fatalf("ListImages filtered on an absent image = %v, %v; want none", list, err)
	}

	// Verbose status carries the image config.
	resp, err := d.Image.ImageStatus(ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: id}, Verbose: true})
	if err != nil || !strings.Contains(resp.Info["info"], `"architecture":"amd64"`) {
		t.Errorf("verbose ImageStatus info = %v, %v", resp.GetInfo(), err)
	}

	// The snapshotter's space is reported.
	fs, err := d.Image.ImageFsInfo(ctx(t), &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	u := fs.ImageFilesystems[0]
	if !strings.HasPrefix(u.FsId.Mountpoint, d.Root) || u.UsedBytes.Value == 0 || u.InodesUsed.Value == 0 {
		t.Errorf("ImageFsInfo = %v; want a mountpoint under %s and usage", u, d.Root)
	}
}

func TestPullErrorsSayWhatWentWrong(t *testing.T) {
	_, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts)
	tests := []struct {
		desc, ref string
		code      codes.Code
		want      string
	}{
		{"bad reference", "Not/A:Valid:Ref", codes.InvalidArgument, "not valid"},
		{"missing tag", "registry.k8s.io/e2e-test-images/busybox:nope", codes.NotFound, "not found in registry registry.k8s.io"},
		{"missing repository", "registry.k8s.io/e2e-test-images/nothing:1", codes.NotFound, "not found in registry registry.k8s.io"},
		{"unreachable registry", "127.0.0.1:1/x/y:1", codes.Unavailable, "registry 127.0.0.1:1 is unreachable"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			_, err := pull(t, d.Image, test.ref, nil)
			if status.Code(err) != test.code || !strings.Contains(err.Error(), test.want) {
				t.Errorf("PullImage(%s) = %v; want %v containing %q", test.ref, err, test.code, test.want)
			}
		})
	}
}

// requireBasicAuth wraps a registry so that it answers only requests with this user and password.
func requireBasicAuth(user, password string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestPullWithBasicAuth(t *testing.T) {
	_, hosts := serveImages(t, requireBasicAuth("kube", "s3cret"))
	d := startDaemon(t, "--registry-config-dir", hosts)
	tests := []struct {
		desc string
		auth *runtimeapi.AuthConfig
		ok   bool
	}{
		{"no credentials", nil, false},
		{"wrong password", &runtimeapi.AuthConfig{Username: "kube", Password: "wrong"}, false},
		{"username and password", &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret"}, true},
		{"auth", &runtimeapi.AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("kube:s3cret"))}, true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			_, err := pull(t, d.Image, tagsRef+":1", test.auth)
			if test.ok && err != nil {
				t.Fatalf("PullImage: %v", err)
			}
			if !test.ok {
				if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "gcr.io") {
					t.Fatalf("PullImage = %v; want PermissionDenied naming the registry", err)
				}
				if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error leaks the credential: %v", err)
				}
			}
		})
	}
	if logs := d.Logs(); strings.Contains(logs, "s3cret") {
		t.Errorf("berthd logged the password")
	}
}

func TestCredentialsFromConfigDir(t *testing.T) {
	reg, hosts := serveImages(t, requireBasicAuth("node", "filepass"))
	// Credentials are looked up for the host that answers: the mirror.
	mirrorDir := filepath.Join(hosts, reg.Addr)
	if err := os.MkdirAll(mirrorDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mirrorDir, "credentials.toml"), []byte("username = \"node\"\npassword = \"filepass\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--registry-config-dir", hosts)
	mustPull(t, d.Image, tagsRef+":1")
}

func TestMirrorDownFallsBackToTheNext(t *testing.T) {
	reg, hosts := serveImages(t, nil)
	// registry.k8s.io: a dead mirror first, then the live one.
	content := fmt.Sprintf(`server = "https://registry.k8s.io"

[host."http://127.0.0.1:1/v2/registry.k8s.io"]
  capabilities = ["pull", "resolve"]
  override_path = true

[host."http://%s/v2/registry.k8s.io"]
  capabilities = ["pull", "resolve"]
  override_path = true
`, reg.Addr)
	if err := os.WriteFile(filepath.Join(hosts, "registry.k8s.io", "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--registry-config-dir", hosts)
	mustPull(t, d.Image, busyboxRef)
}

func TestConcurrentPullsFetchEachBlobOnce(t *testing.T) {
	reg, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts)
	before := reg.BlobGets.Load()
	var wg sync.WaitGroup
	ids := make([]string, 20)
	errs := make([]error, 20)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = pull(t, d.Image, busyboxRef, nil)
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("pull %d = %s, %v; want %s", i, ids[i], errs[i], ids[0])
		}
	}
	// busybox is a config and two layers.
	if got := reg.BlobGets.Load() - before; got != 3 {
		t.Errorf("20 concurrent pulls fetched %d blobs, want 3 (config and two layers, once each)", got)
	}
	// Another image sharing the base layer fetches only what it lacks: its config and one layer.
	before = reg.BlobGets.Load()
	mustPull(t, d.Image, "registry.k8s.io/e2e-test-images/nginx:1.14-2")
	if got := reg.BlobGets.Load() - before; got != 2 {
		t.Errorf("pulling an image that shares the base layer fetched %d blobs, want 2", got)
	}
}

func TestStalledPullIsCancelled(t *testing.T) {
	stall := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
				select { // a registry that accepts the request and never sends a byte
				case <-r.Context().Done():
				case <-time.After(time.Minute):
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	_, hosts := serveImages(t, stall)
	d := startDaemon(t, "--registry-config-dir", hosts, "--image-pull-progress-timeout", "2s")
	start := time.Now()
	_, err := pull(t, d.Image, busyboxRef, nil)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("stalled pull = %v; want DeadlineExceeded saying there was no progress", err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("stalled pull took %s to give up with a 2s progress timeout", elapsed)
	}
}

func TestRemoveTagVersusID(t *testing.T) {
	_, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts)
	id := mustPull(t, d.Image, tagsRef+":1")
	for _, tag := range []string{"2", "3"} {
		if got := mustPull(t, d.Image, tagsRef+":"+tag); got != id {
			t.Fatalf("tag %s is image %s, want %s", tag, got, id)
		}
	}
	remove := func(ref string) {
		t.Helper()
		if _, err := d.Image.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("RemoveImage(%s): %v", ref, err)
		}
	}
	remove(tagsRef + ":1")
	img := imageStatus(t, d.Image, id)
	if img == nil || !slices.Equal(img.RepoTags, []string{tagsRef + ":2", tagsRef + ":3"}) {
		t.Fatalf("after removing one tag of three: %v; want the image with the other two", img)
	}
	remove(id)
	for _, ref := range []string{id, tagsRef + ":2", tagsRef + ":3"} {
		if img := imageStatus(t, d.Image, ref); img != nil {
			t.Errorf("ImageStatus(%s) after removal by id = %v, want none", ref, img)
		}
	}
	remove(id) // idempotent
}

func TestRemoveImageInUseIsRefused(t *testing.T) {
	_, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts)
	id := mustPull(t, d.Image, busyboxRef)

	// A container record that uses the image, as the runtime makes one.
	client := containerdClient(t, d)
	c := containers.Container{ID: "holder", Image: id, Labels: map[string]string{"io.berth.container.name": "app"},
		Runtime: containers.RuntimeInfo{Name: "io.containerd.runc.v2"}}
	if _, err := client.ContainerService().Create(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	_, err := d.Image.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: busyboxRef}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), `"app"`) {
		t.Fatalf("RemoveImage of an image in use = %v; want FailedPrecondition naming the container", err)
	}
	if err := client.ContainerService().Delete(ctx(t), "holder"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Image.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: busyboxRef}}); err != nil {
		t.Fatalf("RemoveImage once unused: %v", err)
	}
}

// TestLayerDeletionsApply: a layer's whiteout and opaque directory hide what the layers below it
// added, however the layers were unpacked (the managed containerd applies them side by side).
func TestLayerDeletionsApply(t *testing.T) {
	e := newContainerEnv(t, "whiteouts")
	mustPull(t, e.d.Image, images.WhiteoutsRef)
	script := `for f in /data/kept /data/late /opaque/new; do [ -e $f ] || echo "missing $f"; done
for f in /data/gone /opaque/old /opaque/sub; do [ -e $f ] && echo "present $f"; done; true`
	id := e.run(t, "view", func(c *runtimeapi.ContainerConfig) {
		c.Image = &runtimeapi.ImageSpec{Image: images.WhiteoutsRef}
		c.Command = []string{"sh", "-c", script}
	})
	if st := e.waitExit(t, id); st.ExitCode != 0 {
		t.Fatalf("exit code %d", st.ExitCode)
	}
	var out []string
	for _, en := range logEntries(t, filepath.Join(e.logDir, "view.log")) {
		out = append(out, en[2])
	}
	if len(out) != 0 {
		t.Errorf("the container's root file system: %q", out)
	}
}

// A credential is sent only to the registry its server_address names: the mirror that stands
// in for that registry never sees it (it would have before), and one for the mirror itself is.
func TestPullCredentialsGoOnlyToTheirServer(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, _, ok := r.BasicAuth(); ok {
				mu.Lock()
				seen = append(seen, u)
				mu.Unlock()
			}
			requireBasicAuth("kube", "s3cret")(next).ServeHTTP(w, r)
		})
	}
	reg, hosts := serveImages(t, record)
	d := startDaemon(t, "--registry-config-dir", hosts)
	// The image is gcr.io's; its pulls go to the mirror on loopback.
	_, err := pull(t, d.Image, tagsRef+":1", &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret", ServerAddress: "gcr.io"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("pull through the mirror with gcr.io's credential = %v, want PermissionDenied", err)
	}
	mu.Lock()
	if len(seen) > 0 {
		t.Errorf("the mirror was sent gcr.io's credential (%v)", seen)
	}
	mu.Unlock()
	if _, err := pull(t, d.Image, tagsRef+":1", &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret", ServerAddress: "http://" + reg.Addr}); err != nil {
		t.Errorf("pull with the mirror's own credential: %v", err)
	}
}
