package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// podShmOptions are those of the tmpfs a pod's containers share as /dev/shm (what the kubelet's
// other runtimes give: 64 MiB, world-writable and sticky, nothing executable).
const podShmOptions = "mode=1777,size=65536k"

// podShmDir is where a pod's /dev/shm is mounted, in its directory.
func podShmDir(sandboxDir string) string { return filepath.Join(sandboxDir, "shm") }

// mountPodShm mounts the tmpfs a pod's containers share as /dev/shm, so that POSIX shared memory
// works between them as System V IPC does through the pod's IPC namespace.
// A pod with a user namespace of its own gets it owned by its root (uids, gids: the pod's
// mappings; nil for other pods).
func mountPodShm(sandboxDir string, uids, gids []specs.LinuxIDMapping) (string, error) {
	dir := podShmDir(sandboxDir)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	opts := podShmOptions
	if len(uids) > 0 && len(gids) > 0 {
		opts += fmt.Sprintf(",uid=%d,gid=%d", uids[0].HostID, gids[0].HostID)
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return "", fmt.Errorf("mount the pod's /dev/shm at %s: %w", dir, err)
	}
	return dir, nil
}

// unmountPodShm unmounts a pod's /dev/shm; nothing mounted there is not an error.
func unmountPodShm(sandboxDir string) error {
	dir := podShmDir(sandboxDir)
	for {
		err := unix.Unmount(dir, unix.MNT_DETACH)
		switch {
		case err == nil:
			continue // mounted twice (say by a berthd that died mid-way): unmount them all
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return fmt.Errorf("unmount the pod's /dev/shm at %s: %w", dir, err)
		}
	}
}

// podShm is the /dev/shm a pod gives its containers: empty when it uses the node's IPC namespace.
func podShm(sb *Sandbox) string {
	if hostIPC(sb.Config) {
		return ""
	}
	return podShmDir(sb.Dir)
}
