// Package traces counts what a berthd's pods can leave on the node — containerd's records,
// shims and infra processes, namespace pins and mounts, veths, IPs and iptables rules, cgroups,
// berth's directories, the CNI cache — so that a soak or a fuzz can compare the node before
// and after.
package traces

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/berth-runtime/berth/test/daemon"
)

// Host is a berthd and where its pods leave traces.
type Host struct {
	Client *containerd.Client // its containerd
	Daemon *daemon.Daemon
	// Network is the CNI network whose host-local IPs are counted.
	Network string
	// CgroupParents are cgroup directories (relative to each hierarchy) under which its pods'
	// cgroups are made, besides berth's own.
	CgroupParents []string
}

// Leaks prints each kind of trace whose count differs between before and after, prefixed, and
// returns how many traces there are more of.
func Leaks(w io.Writer, prefix string, before, after map[string]int) int {
	leaks := 0
	for _, k := range SortedKeys(before, after) {
		if d := after[k] - before[k]; d != 0 {
			fmt.Fprintf(w, "%s: leak: %s: %d before, %d after\n", prefix, k, before[k], after[k])
			if d > 0 {
				leaks += d
			}
		}
	}
	return leaks
}

// Settled counts the node's traces until they equal want (nil: until two counts agree), for up
// to 30 s: shims take a few seconds to go after their pod.
func (h Host) Settled(want map[string]int) map[string]int {
	deadline := time.Now().Add(30 * time.Second)
	prev := h.Count()
	for {
		time.Sleep(500 * time.Millisecond)
		cur := h.Count()
		if (want == nil && equal(cur, prev)) || (want != nil && equal(cur, want)) || time.Now().After(deadline) {
			return cur
		}
		prev = cur
	}
}

// Count is every kind of trace a pod of h's berthd can leave on the node.
func (h Host) Count() map[string]int {
	c := map[string]int{}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "berth"), 10*time.Second)
	defer cancel()
	if l, err := h.Client.Containers(ctx); err == nil {
		c["containerd containers"] = len(l)
	}
	if l, err := h.Client.TaskService().List(ctx, nil); err == nil {
		c["containerd tasks"] = len(l.Tasks)
	}
	n := 0
	if err := h.Client.SnapshotService("overlayfs").Walk(ctx, func(context.Context, snapshots.Info) error { n++; return nil }); err == nil {
		c["snapshots"] = n
	}
	if l, err := h.Client.LeasesService().List(ctx); err == nil {
		c["leases"] = len(l)
	}
	n = 0
	if err := h.Client.ContentStore().Walk(ctx, func(content.Info) error { n++; return nil }); err == nil {
		c["content blobs"] = n
	}
	c["shims"] = len(daemon.Processes(func(cmd string) bool {
		return strings.Contains(cmd, "containerd-shim") && strings.Contains(cmd, h.Daemon.State)
	}))
	c["infra processes"] = len(daemon.Processes(func(cmd string) bool { return strings.HasSuffix(strings.Fields(cmd + " x")[0], "berth-pause") }))
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mounts), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || !(strings.HasPrefix(f[4], h.Daemon.Dir) || strings.Contains(f[4], "containerd-mount")) {
				continue
			}
			if strings.Contains(line, " - nsfs ") {
				c["namespace pins"]++
			} else {
				c["mounts"]++
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link").Output(); err == nil {
		c["veths"] = strings.Count(string(out), "veth")
	}
	entries, _ := os.ReadDir(filepath.Join("/var/lib/cni/networks", h.Network))
	for _, e := range entries {
		if strings.Count(e.Name(), ".") == 3 {
			c["IPs"]++
		}
	}
	if out, err := exec.Command("iptables-save").Output(); err == nil {
		c["iptables rules"] = strings.Count(string(out), "\n-A ")
	}
	for _, top := range append([]string{"berth"}, h.CgroupParents...) {
		for _, dir := range CgroupDirs(top) {
			if filepath.Base(dir) != filepath.Base(top) {
				c["cgroups"]++
			}
		}
	}
	c["pod directories"] = countEntries(filepath.Join(h.Daemon.State, "pods"))
	c["container directories"] = countEntries(filepath.Join(h.Daemon.State, "containers"))
	c["pending cgroups"] = countEntries(filepath.Join(h.Daemon.State, "cgroups-pending"))
	c["temporary mounts"] = countEntries(filepath.Join(h.Daemon.State, "tmpmounts"))
	filepath.WalkDir(filepath.Join(h.Daemon.Root, "cni-cache"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			c["CNI cache files"]++
		}
		return nil
	})
	return c
}

func countEntries(dir string) int {
	entries, _ := os.ReadDir(dir)
	return len(entries)
}

// Hierarchies are the node's cgroup mount points (v1 controllers and the v2 one).
func Hierarchies() []string {
	var dirs []string
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (strings.Contains(line, " - cgroup ") || strings.Contains(line, " - cgroup2 ")) {
			dirs = append(dirs, f[4])
		}
	}
	return dirs
}

// CgroupDirs lists the cgroup directory top and every one below it, in every hierarchy, the
// deepest first.
func CgroupDirs(top string) []string {
	var dirs []string
	for _, h := range Hierarchies() {
		filepath.WalkDir(filepath.Join(h, top), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

func equal(a, b map[string]int) bool {
	for _, k := range SortedKeys(a, b) {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

func SortedKeys(ms ...map[string]int) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}
