package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// cgroupRoot is where the node's cgroup hierarchies are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// removePodCgroup removes the pod's cgroup parent (the leaf the pod config names, never an
// ancestor such as /kubepods) from every hierarchy, once the pod's processes are gone: runc made
// it for the pod's first container and nobody else removes it when no kubelet manages pod
// cgroups. A parent that still holds something (the kubelet's own, say) stays.
func (r *Runtime) removePodCgroup(parent string) {
	if parent == "" || r.cgroupDriver == "systemd" || strings.Contains(parent, "..") {
		return
	}
	hierarchies, _ := filepath.Glob(filepath.Join(cgroupRoot, "*"))
	hierarchies = append(hierarchies, cgroupRoot) // cgroup v2: the root itself
	for _, h := range hierarchies {
		dir := filepath.Join(h, parent)
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) &&
			!errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
			r.log.Debug("cannot remove pod cgroup", "cgroup", dir, "error", err)
		}
	}
}
