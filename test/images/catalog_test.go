package images

import (
	"archive/tar"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func buildCatalog(t *testing.T) map[string]v1.Image {
	t.Helper()
	busybox, err := BusyboxPath()
	if err != nil {
		t.Fatal(err)
	}
	testbin, err := BuildTestBin("../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Catalog(Sources{Busybox: busybox, TestBin: testbin})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCatalogIsDeterministic(t *testing.T) {
	a, b := buildCatalog(t), buildCatalog(t)
	for _, ref := range Refs(a) {
		da, err := a[ref].Digest()
		if err != nil {
			t.Fatal(err)
		}
		db, _ := b[ref].Digest()
		if da != db {
			t.Errorf("%s: two builds gave %s and %s", ref, da, db)
		}
	}
}

func TestCatalogImages(t *testing.T) {
	c := buildCatalog(t)
	tests := []struct {
		ref       string
		user      string
		layers    int
		files     []string // paths that must be in the image
		sameAs    string   // another reference of the same image
		differsOf string   // another reference that must be a different image
	}{
		{ref: "registry.k8s.io/e2e-test-images/busybox:1.29-2", layers: 2, files: []string{"bin/sh", "bin/ls", "usr/bin/ipcs", "usr/bin/pgrep", "etc/passwd"}},
		{ref: "registry.k8s.io/e2e-test-images/nginx:1.14-2", layers: 2, files: []string{"usr/sbin/nginx", "usr/share/nginx/html/index.html"}},
		{ref: "registry.k8s.io/e2e-test-images/httpd:2.4.39-4", layers: 2, files: []string{"usr/local/bin/httpd-foreground"}},
		{ref: "registry.k8s.io/e2e-test-images/nonewprivs:1.3", layers: 2, files: []string{"usr/local/bin/nonewprivs"}},
		{ref: "gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest", user: "1002", layers: 1},
		{ref: "gcr.io/k8s-staging-cri-tools/test-image-user-username-group:latest", user: "www-data:users", layers: 1},
		{ref: "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest", user: "1000", layers: 2},
		{ref: "gcr.io/k8s-staging-cri-tools/test-image-tags:1", layers: 2, sameAs: "gcr.io/k8s-staging-cri-tools/test-image-tags:3"},
		{ref: "gcr.io/k8s-staging-cri-tools/test-image-1:latest", layers: 2, differsOf: "gcr.io/k8s-staging-cri-tools/test-image-2:latest"},
	}
	for _, test := range tests {
		t.Run(test.ref, func(t *testing.T) {
			img, ok := c[test.ref]
			if !ok {
				t.Fatalf("catalog has no %s", test.ref)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			if cf.Config.User != test.user {
				t.Errorf("USER = %q, want %q", cf.Config.User, test.user)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != test.layers {
				t.Fatalf("layers = %d (%v), want %d", len(layers), err, test.layers)
			}
			have := map[string]bool{}
			for _, l := range layers {
				rc, err := l.Uncompressed()
				if err != nil {
					t.Fatal(err)
				}
				tr := tar.NewReader(rc)
				for {
					h, err := tr.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					have[h.Name] = true
				}
				rc.Close()
			}
			for _, f := range test.files {
				if !have[f] {
					t.Errorf("image lacks %s", f)
				}
			}
			d, _ := img.Digest()
			if test.sameAs != "" {
				if other, _ := c[test.sameAs].Digest(); other != d {
					t.Errorf("%s is %s, %s is %s: want one image", test.ref, d, test.sameAs, other)
				}
			}
			if test.differsOf != "" {
				if other, _ := c[test.differsOf].Digest(); other == d {
					t.Errorf("%s and %s are the same image", test.ref, test.differsOf)
				}
			}
		})
	}
}
