package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// asNobody runs a shell command as uid and gid 65534 with no groups and reports whether it
// succeeded, with its output.
func asNobody(t *testing.T, script string) (bool, string) {
	t.Helper()
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script).CombinedOutput()
	return err == nil, string(out)
}

// containerd's GHSA-pwhc-rpq9-4c8w: directories of the runtime that other local users could
// enter let them reach the containers' files, shared memory and sockets. As a local user
// (nobody), nothing under berth's root and state is reachable: not a pod's /dev/shm, not its
// namespace pins, not a container's root file system; no socket takes its connections.
func TestAdvisoryLocalUsersReachNothing(t *testing.T) {
	e := newContainerEnv(t, "advisory-local")
	e.run(t, "app", nil)
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		under := strings.HasPrefix(m.Mountpoint, e.d.State+"/") || strings.HasPrefix(m.Mountpoint, e.d.Root+"/")
		return !under, false
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) < 3 {
		t.Fatalf("only %d mounts under berth's directories: want the pod's /dev/shm, its pins and the container's root", len(mounts))
	}
	for _, m := range mounts {
		if ok, out := asNobody(t, "stat -L "+m.Mountpoint); ok {
			t.Errorf("a local user reaches %s (%s):\n%s", m.Mountpoint, m.FSType, out)
		}
	}
	socks, _ := filepath.Glob(filepath.Join(e.d.State, "containerd", "*.sock"))
	shimSocks, _ := filepath.Glob(filepath.Join(e.d.State, "*", "*", "*.sock"))
	for _, s := range append(append(socks, shimSocks...), e.d.Socket) {
		// Connecting takes write permission on the socket (and the way to it).
		if ok, _ := asNobody(t, "test -w "+s); ok {
			t.Errorf("a local user can connect to the socket %s", s)
		}
	}
	for _, d := range []string{e.d.Root, e.d.State, filepath.Join(e.d.State, "pods"), filepath.Join(e.d.State, "containers")} {
		if ok, _ := asNobody(t, "ls "+d); ok {
			t.Errorf("a local user lists %s", d)
		}
	}
}

// containerd's GHSA-36xw-fx78-c5r4: the shim's API listened on an abstract unix socket, which
// lives in a network namespace rather than the file system, so a host-network pod could
// connect to it and drive the node's containers. None of the sockets of berthd, its containerd
// or their shims is abstract.
func TestAdvisoryNoAbstractSockets(t *testing.T) {
	e := newContainerEnv(t, "advisory-abstract")
	e.run(t, "app", nil)
	abstract := map[string]string{} // socket inode: name
	table, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 8 && strings.HasPrefix(f[7], "@") {
			abstract[f[6]] = f[7]
		}
	}
	pids := append(processesWith(e.d.State), processesWith(e.d.Root)...)
	if len(pids) < 3 {
		t.Fatalf("%d processes of this berthd: want berthd, its containerd and a shim", len(pids))
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if inode, ok := strings.CutPrefix(link, "socket:["); ok {
				if name, ok := abstract[strings.TrimSuffix(inode, "]")]; ok {
					cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
					t.Errorf("%s (pid %d) has the abstract socket %s", strings.TrimSpace(string(cmd)), pid, name)
				}
			}
		}
	}
}
