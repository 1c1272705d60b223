package parity

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// statusFields are the lines of /proc/<pid>/status that say who a process is and what it may do.
var statusFields = []string{"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"}

// ProcessView reads what the process pid sees of itself, from the node: its limits, identity and
// capabilities, cgroups and mounts.
func ProcessView(pid int) (Fields, error) {
	out := Fields{}
	for _, f := range []struct {
		name  string
		parse func(Fields, string)
	}{{"limits", ParseLimits}, {"status", ParseStatus}, {"cgroup", ParseCgroup}, {"mountinfo", ParseMountinfo}} {
		b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), f.name))
		if err != nil {
			return nil, err
		}
		f.parse(out, string(b))
	}
	return out, nil
}

// ParseLimits adds "limits[<name>]" = "<soft> <hard>" per line of /proc/<pid>/limits.
func ParseLimits(out Fields, s string) {
	for _, line := range strings.Split(s, "\n")[1:] {
		if len(line) < 26 {
			continue
		}
		name := strings.TrimSpace(line[:26])
		f := strings.Fields(line[26:])
		if len(f) >= 2 {
			out["limits["+name+"]"] = f[0] + " " + f[1]
		}
	}
}

// ParseStatus adds "status.<field>" for the statusFields of /proc/<pid>/status.
func ParseStatus(out Fields, s string) {
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && slices.Contains(statusFields, k) {
			out["status."+k] = strings.Join(strings.Fields(v), " ")
		}
	}
}

// ParseCgroup adds "cgroup[<controllers>]" = path per line of /proc/<pid>/cgroup.
func ParseCgroup(out Fields, s string) {
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out["cgroup["+parts[1]+"]"] = parts[2]
		}
	}
}

// ParseMountinfo adds "mount[<mount point>]" = "<fs type> <root> <mount options> <super
// options>" per mount of /proc/<pid>/mountinfo; the last mount at a point wins, as it is the
// one seen. Overlay's super options (its layer directories) are the runtimes' own paths and
// left out; so are mount ids and device numbers.
func ParseMountinfo(out Fields, s string) {
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 3 {
			continue
		}
		root, point, opts := f[3], f[4], f[5]
		fstype, super := g[0], g[2]
		if fstype == "overlay" {
			super, root = "", ""
		}
		parts := slices.DeleteFunc([]string{fstype, root, opts, super}, func(s string) bool { return s == "" })
		out["mount["+point+"]"] = strings.Join(parts, " ")
	}
}
