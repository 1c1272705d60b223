// Package namespace creates the Linux namespaces a pod shares (network, IPC, UTS) and pins each
// to a file with a bind mount, so that they outlive every process (a berth pod usually has none)
// and containers can join them by path.
package namespace

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Kind is a namespace type, named as in /proc/<pid>/ns.
type Kind string

// The namespaces a pod may own.
const (
	Net Kind = "net"
	IPC Kind = "ipc"
	UTS Kind = "uts"
)

var cloneFlags = map[Kind]int{Net: unix.CLONE_NEWNET, IPC: unix.CLONE_NEWIPC, UTS: unix.CLONE_NEWUTS}

// PinPath is where Pin pins the namespace of kind k in dir.
func PinPath(dir string, k Kind) string { return filepath.Join(dir, string(k)) }

// Pin creates one new namespace of each kind and pins it at dir/<kind>. A new UTS namespace gets
// hostname; a new network namespace has its loopback interface up. On error nothing is left
// behind. It returns the path of each pinned namespace.
func Pin(dir string, kinds []Kind, hostname string) (map[Kind]string, error) {
	if len(kinds) == 0 {
		return map[Kind]string{}, nil
	}
	flags := 0
	for _, k := range kinds {
		f, ok := cloneFlags[k]
		if !ok {
			return nil, fmt.Errorf("namespace kind %q is not one berth pins", k)
		}
		flags |= f
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	paths := map[Kind]string{}
	for _, k := range kinds {
		p := PinPath(dir, k)
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			release(paths)
			return nil, fmt.Errorf("create pin file: %w", err)
		}
		f.Close()
		paths[k] = p
	}

	errc := make(chan error, 1)
	// The namespaces are made on a thread of their own, which is never given back to the Go
	// scheduler: a goroutine that ends with its thread locked takes the thread with it.
	go func() {
		runtime.LockOSThread()
		errc <- enterAndPin(flags, paths, hostname)
	}()
	if err := <-errc; err != nil {
		release(paths)
		return nil, err
	}
	return paths, nil
}

// release undoes what a failed Pin did: only the pins it made, never one that was there before.
func release(paths map[Kind]string) {
	for _, p := range paths {
		_ = unpinFile(p)
	}
}

func enterAndPin(flags int, paths map[Kind]string, hostname string) error {
	// Go drops a thread that ends locked, except the process's main thread, which it keeps
	// parked: were this the main thread, /proc/<pid>/ns would show the pod's namespaces. So the
	// thread goes back to its own namespaces when done.
	tid := unix.Gettid()
	var back []int
	for k := range paths {
		fd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, k), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open own %s namespace: %w", k, err)
		}
		defer unix.Close(fd)
		back = append(back, fd)
	}
	defer func() {
		for _, fd := range back {
			_ = unix.Setns(fd, 0)
		}
	}()
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if flags&unix.CLONE_NEWNET != 0 {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	for k, p := range paths {
		src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, k)
		if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace at %s: %w", k, p, err)
		}
	}
	return nil
}

// loopbackUp brings lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring loopback up: %w", err)
	}
	return nil
}

// Unpin unmounts every pinned namespace in dir and removes dir. The namespaces go away once no
// process is in them. Unpinning a directory that is not there is not an error.
func Unpin(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := unpinFile(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unpinFile unmounts a pinned namespace file, if it is mounted, and removes it.
func unpinFile(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Pinned reports whether a namespace is pinned at path: a file on which a namespace is mounted
// (nsfs). A pin file that a crash left between its creation and its bind mount is an empty
// regular file, and names no namespace.
func Pinned(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is not a pinned namespace (file system magic %#x)", path, st.Type)
	}
	return nil
}

// Do runs fn on an OS thread that has joined the namespace of kind pinned (or found) at path,
// and returns that thread to its own namespace afterwards. fn must not start goroutines that
// need the namespace: they run on other threads.
func Do(kind Kind, path string, fn func() error) error {
	flag, ok := cloneFlags[kind]
	if !ok {
		return fmt.Errorf("namespace kind %q is not one berth joins", kind)
	}
	errc := make(chan error, 1)
	go func() {
		// Locked, and left locked if the way back fails: the thread is then dropped.
		runtime.LockOSThread()
		own, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", unix.Gettid(), kind), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open own %s namespace: %w", kind, err)
			return
		}
		defer unix.Close(own)
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open %s namespace %s: %w", kind, path, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, flag); err != nil {
			errc <- fmt.Errorf("join %s namespace %s: %w", kind, path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(own, flag); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave %s namespace: %w", kind, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// User is a user namespace: a pod with a user namespace of its own has it pinned too.
const User Kind = "user"

// IDMap maps a range of ids in a user namespace to the node's.
type IDMap struct{ ContainerID, HostID, Size uint32 }

// PinInUserns is Pin for a pod with a user namespace of its own: it creates a user namespace
// with the given uid and gid mappings and, owned by it, one new namespace of each of kinds, and
// pins them all (the user namespace at dir/user). The new namespaces belong to the pod's user
// namespace, so that the pod's root can manage them (its network, its hostname) as it could its
// own. A thread of a multi-threaded process cannot make a user namespace, so a helper process
// (helper, a program that waits until killed: berth-pause) is started in the new namespaces and
// killed once they are pinned.
func PinInUserns(dir string, kinds []Kind, hostname string, uids, gids []IDMap, helper string) (map[Kind]string, error) {
	flags := uintptr(unix.CLONE_NEWUSER)
	for _, k := range kinds {
		f, ok := cloneFlags[k]
		if !ok {
			return nil, fmt.Errorf("namespace kind %q is not one berth pins", k)
		}
		flags |= uintptr(f)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	paths := map[Kind]string{}
	for _, k := range append([]Kind{User}, kinds...) {
		p := PinPath(dir, k)
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			release(paths)
			return nil, fmt.Errorf("create pin file: %w", err)
		}
		f.Close()
		paths[k] = p
	}
	cmd := exec.Command(helper)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  flags,
		UidMappings: toSysProcIDMap(uids),
		GidMappings: toSysProcIDMap(gids),
		// Leave setgroups allowed: Go writes "deny" to /proc/<pid>/setgroups otherwise, and
		// then runc cannot give a container of the pod its supplementary groups (it skips
		// them without a word).
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		release(paths)
		return nil, fmt.Errorf("start a process in the pod's user namespace: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for k, p := range paths {
		src := fmt.Sprintf("/proc/%d/ns/%s", cmd.Process.Pid, k)
		if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
			release(paths)
			return nil, fmt.Errorf("pin %s namespace at %s: %w", k, p, err)
		}
	}
	if p, ok := paths[UTS]; ok && hostname != "" {
		if err := Do(UTS, p, func() error { return unix.Sethostname([]byte(hostname)) }); err != nil {
			release(paths)
			return nil, fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if p, ok := paths[Net]; ok {
		if err := Do(Net, p, loopbackUp); err != nil {
			release(paths)
			return nil, err
		}
	}
	return paths, nil
}

func toSysProcIDMap(m []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}
