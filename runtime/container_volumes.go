package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/continuity/fs"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/spec"
)

// volumesDir holds a container's image-defined volumes.
func (r *Runtime) volumesDir(id string) string { return filepath.Join(r.containerDir(id), "volumes") }

// prepareImageVolumes makes a writable directory for each VOLUME of the image that the config
// does not mount itself, holding a copy of what the image has at that path (root is the image's
// root file system, mounted read-only), as containerd's CRI does: the volume stays writable in a
// read-only root file system, and what is written there is not in the container's layer. It
// returns the directories by container path. A path is resolved inside root, so that a
// symlink in the image cannot point the copy at the node's files (GHSA-crp2-qrr5-8pq7).
func (r *Runtime) prepareImageVolumes(id string, volumes map[string]struct{}, cfg *runtimeapi.ContainerConfig, root string) (map[string]string, error) {
	if len(volumes) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range slices.Sorted(maps.Keys(volumes)) {
		dest := filepath.Join("/", v) // as Docker reads a relative VOLUME
		if dest == "/" {
			return nil, fmt.Errorf("image volume %q: the root cannot be a volume: %w", v, errdefs.ErrFailedPrecondition)
		}
		if spec.ConfigMounts(cfg, dest) {
			continue
		}
		sum := sha256.Sum256([]byte(dest))
		host := filepath.Join(r.volumesDir(id), hex.EncodeToString(sum[:]))
		if err := os.MkdirAll(host, 0o755); err != nil {
			return nil, err
		}
		src, err := fs.RootPath(root, dest)
		if err != nil {
			return nil, fmt.Errorf("image volume %q: %w", v, err)
		}
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			if err := fs.CopyDir(host, src, fs.WithXAttrExclude("security.selinux")); err != nil {
				return nil, fmt.Errorf("copy the image's %s into its volume: %w", dest, err)
			}
		}
		out[dest] = host
	}
	return out, nil
}
