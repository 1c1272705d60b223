package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// podShmOptions are those of the tmpfs a pod's containers share as /dev/shm (what the kubelet's
// other runtimes give: 64 MiB, world-writable and sticky, nothing executable).
const podShmOptions = "mode=1777,size=65536k"

// podShmDir is where a pod's /dev/shm is mounted, in its directory.
func podShmDir(sandboxDir string) string { return filepath.Join(sandboxDir, "shm") }

// mountPodShm mounts the tmpfs a pod's containers share as /dev/shm, so that POSIX shared memory
// works between them as System V IPC does through the pod's IPC namespace.
func mountPodShm(sandboxDir string) (string, error) {
	dir := podShmDir(sandboxDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, podShmOptions); err != nil {
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
