package spec

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// CgroupControllers says which cgroup controllers the node can enforce for a container. The
// runtime passes the real one (realCgroups); tests a fake.
type CgroupControllers interface {
	// Hugetlb reports whether the hugetlb controller can limit a container whose cgroups path
	// (the OCI spec's linux.cgroupsPath) is cgroupsPath.
	Hugetlb(cgroupsPath string) bool
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
	return realCgroups{v2: v2, driver: driver, root: "/sys/fs/cgroup", v1Hugetlb: nodeV1Hugetlb}
}

var nodeV1Hugetlb = sync.OnceValue(func() bool { return v1Mounted("/proc/self/mountinfo", "hugetlb") })

type realCgroups struct {
	v2        bool
	driver    string
	root      string // where the v2 hierarchy is mounted
	v1Hugetlb func() bool
}

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

// hostPath turns a cgroups path into a path below the hierarchy's root: as it is with cgroupfs;
// with systemd "parent.slice:prefix:name" becomes the parent slice's nested directories and
// the scope "prefix-name.scope".
func (c realCgroups) hostPath(cgroupsPath string) string {
	if c.driver != "systemd" {
		return cgroupsPath
	}
	parts := strings.SplitN(cgroupsPath, ":", 3)
	if len(parts) != 3 {
		return cgroupsPath
	}
	return filepath.Join(sliceDir(parts[0]), parts[1]+"-"+parts[2]+".scope")
}

// sliceDir expands a systemd slice name into its directory: "a-b-c.slice" lives in
// "a.slice/a-b.slice/a-b-c.slice".
func sliceDir(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return "/"
	}
	dir := "/"
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		prefix += part
		dir = filepath.Join(dir, prefix+".slice")
		prefix += "-"
	}
	return dir
}
