// Package cgroup knows where the cgroups of berth's pods and containers are under each cgroup
// driver, and removes them: what runc leaves when it is cut off, and the pod cgroups berth's
// containers made, for cgroupfs and systemd, on cgroup v1 and v2.
package cgroup

import (
	"path/filepath"
	"strings"
)

// The cgroup drivers.
const (
	Cgroupfs = "cgroupfs"
	Systemd  = "systemd"
)

// HostPath turns an OCI linux.cgroupsPath of driver into a directory below a hierarchy's root:
// as it is with cgroupfs; with systemd "parent.slice:prefix:name" becomes the parent slice's
// nested directories and the scope "prefix-name.scope", and a bare "x.slice" its directory.
// The result is always absolute and clean: ".." cannot leave the hierarchy.
func HostPath(driver, cgroupsPath string) string {
	if driver == Systemd {
		if parts := strings.SplitN(cgroupsPath, ":", 3); len(parts) == 3 {
			return filepath.Join(SliceDir(parts[0]), scopeName(parts[1], parts[2]))
		}
		if strings.HasSuffix(cgroupsPath, ".slice") && !strings.Contains(cgroupsPath, "/") {
			return SliceDir(cgroupsPath)
		}
	}
	return filepath.Clean("/" + cgroupsPath)
}

// unitName is the systemd unit a cgroups path of the systemd driver names: the scope of
// "slice:prefix:name", or the slice itself; "" when it names none.
func unitName(cgroupsPath string) string {
	if parts := strings.SplitN(cgroupsPath, ":", 3); len(parts) == 3 {
		return scopeName(parts[1], parts[2])
	}
	if strings.HasSuffix(cgroupsPath, ".slice") && !strings.Contains(cgroupsPath, "/") && cgroupsPath != "-.slice" {
		return cgroupsPath
	}
	return ""
}

// scopeName is runc's name for the scope of a container: "prefix-name.scope", or name itself
// when it already ends in ".slice" (runc then makes a slice).
func scopeName(prefix, name string) string {
	if strings.HasSuffix(name, ".slice") {
		return name
	}
	if prefix == "" {
		return name + ".scope"
	}
	return prefix + "-" + name + ".scope"
}

// SliceDir expands a systemd slice name into its directory: "a-b-c.slice" lives in
// "/a.slice/a-b.slice/a-b-c.slice"; the root slice "-.slice" is "/".
func SliceDir(slice string) string {
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
