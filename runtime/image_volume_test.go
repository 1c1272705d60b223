package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestImageSubPath(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"data/conf", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "data/conf/app.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs":   "/data",    // absolute: the image's /data, not the node's
		"up":    "../../..", // climbs no further than the image's root
		"node":  "/proc",    // the node's /proc is not the image's
		"inner": "data/conf",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		sub, want string // want "" : not found
	}{
		{"data", "data"},
		{"/data/conf/", "data/conf"},
		{"data/conf/app.yaml", "data/conf/app.yaml"},
		{"abs/conf", "data/conf"},
		{"up/etc", "etc"},
		{"../../etc", "etc"},
		{"inner/app.yaml", "data/conf/app.yaml"},
		{"node/self", ""},
		{"missing", ""},
	}
	for _, test := range tests {
		t.Run(test.sub, func(t *testing.T) {
			got, err := imageSubPath(root, test.sub)
			if test.want == "" {
				if !errdefs.IsNotFound(err) {
					t.Fatalf("imageSubPath(%q) = %q, %v; want NotFound", test.sub, got, err)
				}
				return
			}
			if err != nil || got != filepath.Join(root, test.want) {
				t.Fatalf("imageSubPath(%q) = %q, %v; want %q", test.sub, got, err, filepath.Join(root, test.want))
			}
		})
	}
}
