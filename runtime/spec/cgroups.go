package spec

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-runtime/berth/cgroup"
)

// CgroupControllers says which cgroup controllers the node can enforce for a container. The
// runtime passes the real one (realCgroups); tests a fake.
type CgroupControllers interface {
	// Hugetlb reports whether the hugetlb controller can limit a container whose cgroups path
	// (the OCI spec's linux.cgroupsPath) is cgroupsPath.
	Hugetlb(cgroupsPath string) bool
	// Swap reports whether the memory controller can limit swap (memory.memsw.* on v1,
	// memory.swap.max on v2).
	Swap() bool
}

func (s Settings) cgroups() CgroupControllers {
	if s.Cgroups != nil {
		return s.Cgroups
	}
	return RealCgroups(s.CgroupV2, s.CgroupDriver)
}

// RealCgroups returns this node's controllers: on cgroup v1 (and hybrid) a controller is there
// when a v1 hierarchy carries it (read once: the kubelet asks at every container create, and
// hierarchies are mounted at boot); on v2 when the container's parent lists it in
// cgroup.controllers.
func RealCgroups(v2 bool, driver string) CgroupControllers {
	return realCgroups{v2: v2, driver: driver, root: "/sys/fs/cgroup", v1Hugetlb: nodeV1Hugetlb, swap: nodeSwap}
}

var nodeV1Hugetlb = sync.OnceValue(func() bool { return v1Mounted("/proc/self/mountinfo", "hugetlb") })

// nodeSwap says whether the node can limit a cgroup's swap: v1's memory hierarchy has
// memory.memsw.limit_in_bytes (swap accounting on); on v2 a child of the root has
// memory.swap.max (the root itself has none).
var nodeSwap = sync.OnceValue(func() bool {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
		return true
	}
	m, _ := filepath.Glob("/sys/fs/cgroup/*/memory.swap.max")
	return len(m) > 0
})

type realCgroups struct {
	v2        bool
	driver    string
	root      string // where the v2 hierarchy is mounted
	v1Hugetlb func() bool
	swap      func() bool
}

func (c realCgroups) Swap() bool { return c.swap != nil && c.swap() }

func (c realCgroups) Hugetlb(cgroupsPath string) bool {
	if !c.v2 {
		return c.v1Hugetlb()
	}
	return slices.Contains(c.parentControllers(cgroupsPath), "hugetlb")
}

// v1Mounted reports whether a cgroup v1 hierarchy with controller is mounted.
func v1Mounted(mountinfo, controller string) bool {
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "... - cgroup cgroup rw,hugetlb": the fields after " - " are type, source, super options.
		_, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f := strings.Fields(post)
		if len(f) == 3 && f[0] == "cgroup" && slices.Contains(strings.Split(f[2], ","), controller) {
			return true
		}
	}
	return false
}

// parentControllers reads cgroup.controllers of the container's parent, or of its nearest
// ancestor that exists yet (runc creates the missing ones, which get what their parent offers).
func (c realCgroups) parentControllers(cgroupsPath string) []string {
	dir := filepath.Dir(filepath.Join(c.root, c.hostPath(cgroupsPath)))
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers")); err == nil {
			return strings.Fields(string(b))
		}
		if dir == c.root || !strings.HasPrefix(dir, c.root) {
			return nil
		}
		dir = filepath.Dir(dir)
	}
}

// hostPath turns a cgroups path into a path below the hierarchy's root (cgroup.HostPath).
func (c realCgroups) hostPath(cgroupsPath string) string {
	return cgroup.HostPath(c.driver, cgroupsPath)
}

// withCgroupView mounts the container's cgroups at /sys/fs/cgroup, read-only (withSecurity makes
// a privileged container's writable). On cgroup v2 an unprivileged container gets a cgroup
// namespace of its own, so that its cgroup is the root it sees, as containerd and CRI-O give; on
// v1, and for privileged containers, it shares the node's (runc then mounts the container's
// directory of each hierarchy). A container that shares the node's cgroup2 superblock keeps the
// node's nsdelegate and memory_recursiveprot, or its mount would strip them from the node.
func withCgroupView(in Input) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		opts := []string{"nosuid", "noexec", "nodev", "relatime", "ro"}
		if in.Settings.CgroupV2 && !in.Config.GetLinux().GetSecurityContext().GetPrivileged() {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		} else {
			opts = append(opts, in.Settings.CgroupMountOptions...)
		}
		s.Mounts = slices.DeleteFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/sys/fs/cgroup" })
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: opts})
		return nil
	}
}
