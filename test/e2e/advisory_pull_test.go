package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/images"
)

// containerd's GHSA-742w-89gc-8m9c: a layer with foreign URLs (non-distributable) was fetched
// from those URLs with the registry's credentials, sending them to whatever server the image
// named. An image whose layer names a server of the test's is pulled with a password and with
// a bearer token: that server never sees either.
func TestAdvisoryCredentialsStayWithTheirRegistry(t *testing.T) {
	var mu sync.Mutex
	var foreignAuth []string
	foreignHits := 0
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		foreignHits++
		if a := r.Header.Get("Authorization"); a != "" {
			foreignAuth = append(foreignAuth, a)
		}
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer foreign.Close()

	base := testImages(t)[busyboxRef]
	layer, err := random.Layer(1024, types.DockerForeignLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.DockerForeignLayer, URLs: []string{foreign.URL + "/layer.tar.gz"}})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "registry.k8s.io/berth/advisory-foreign:1"
	reg, err := images.StartRegistry("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if err := reg.Push(context.Background(), map[string]v1.Image{ref: img}); err != nil {
		t.Fatal(err)
	}
	// A password for a registry that asks for one; a bearer token (which berth sends as a
	// header) for one that does not.
	plainHosts, authHosts := t.TempDir(), t.TempDir()
	if err := reg.WriteHostsDir(plainHosts); err != nil {
		t.Fatal(err)
	}
	if err := proxyRegistry(t, reg, requireBasicAuth("kube", "s3cret")).WriteHostsDir(authHosts); err != nil {
		t.Fatal(err)
	}
	for _, try := range []struct {
		hosts string
		auth  *runtimeapi.AuthConfig
	}{
		{authHosts, &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret"}},
		{plainHosts, &runtimeapi.AuthConfig{RegistryToken: "t0ken", ServerAddress: "registry.k8s.io"}},
	} {
		d := startDaemon(t, "--registry-config-dir", try.hosts)
		c, cancel := context.WithTimeout(ctx(t), time.Minute)
		_, err := d.Image.PullImage(c, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: try.auth})
		cancel()
		t.Logf("pull of an image with a foreign layer: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("the foreign server was asked %d times", foreignHits)
	if len(foreignAuth) > 0 {
		t.Errorf("the foreign layer's server was sent credentials: %q", foreignAuth)
	}
}

// containerd's GHSA-pg57-6jwg-q645: an image index whose entries name the same lower index
// twice, level under level, is a graph of a few kilobytes with 2^depth paths; a pull that
// walks every path never ends. The pull ends within a minute, whatever its answer.
func TestAdvisoryExplodingIndex(t *testing.T) {
	leaf := testImages(t)[busyboxRef]
	var idx v1.ImageIndex = mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: leaf,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}}})
	const depth = 30
	for range depth {
		idx = mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: idx}, mutate.IndexAddendum{Add: idx})
	}
	const ref = "registry.k8s.io/berth/advisory-index:exploding"
	reg, err := images.StartRegistry("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	target, err := reg.MirrorRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(target, idx); err != nil {
		t.Fatal(err)
	}
	hosts := t.TempDir()
	if err := reg.WriteHostsDir(hosts); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--registry-config-dir", hosts)
	start := time.Now()
	c, cancel := context.WithTimeout(ctx(t), 2*time.Minute)
	defer cancel()
	_, err = d.Image.PullImage(c, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	took := time.Since(start)
	t.Logf("pull of an index with 2^%d paths: %v after %s", depth, err, took.Round(time.Millisecond))
	if took > time.Minute {
		t.Errorf("the pull took %s", took)
	}
	if _, err := d.Runtime.Version(ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Errorf("berthd after the pull: %v", err)
	}
}
