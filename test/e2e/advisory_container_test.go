package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

// statusField is the value of a field of a /proc/<pid>/status text.
func statusField(t *testing.T, status, field string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in:\n%s", field, status)
	return ""
}

// The process of a container and of an exec in it, as the peers' advisories about them check
// them in /proc/<pid>/status:
//   - containerd's GHSA-c9cp-9c75-9v8c: no inheritable capabilities, for the container's process
//     and for an exec'd one (a program with file capabilities would gain them through execve).
//   - containerd's GHSA-hmfx-3pcx-653p: the primary gid is among the supplementary groups, so
//     that a file mode denying that group denies the process.
//   - containerd's GHSA-6g2q-w5j3-fwh4: the environment of one container of an image does not
//     leak into another container of that image.
//   - containerd's GHSA-7ww5-4wqc-m92c: with the kubelet's default masked paths, the node's
//     power readings (/sys/devices/virtual/powercap, a side channel) are masked.
func TestAdvisoryContainerProcess(t *testing.T) {
	e := newContainerEnv(t, "advisory-process")
	first := e.run(t, "first", func(c *runtimeapi.ContainerConfig) {
		c.Envs = []*runtimeapi.KeyValue{{Key: "FIRST_SECRET", Value: []byte("s3cr3t")}}
		c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 3000},
			SupplementalGroups: []int64{4000},
			MaskedPaths:        []string{"/proc/kcore", "/sys/firmware", "/sys/devices/virtual/powercap"},
			ReadonlyPaths:      []string{"/proc/sys"},
		}}
	})
	second := e.run(t, "second", nil)

	for _, pid := range []string{"1", "self"} {
		st := e.exec(t, first, "cat", fmt.Sprintf("/proc/%s/status", pid))
		if got := statusField(t, st, "CapInh"); strings.Trim(got, "0") != "" {
			t.Errorf("/proc/%s/status: CapInh %s, want none", pid, got)
		}
		if got := statusField(t, st, "Uid"); strings.Fields(got)[0] != "1000" {
			t.Errorf("/proc/%s/status: Uid %s, want 1000", pid, got)
		}
		groups := strings.Fields(statusField(t, st, "Groups"))
		if !slices.Contains(groups, "3000") || !slices.Contains(groups, "4000") {
			t.Errorf("/proc/%s/status: Groups %v, want the primary gid 3000 and 4000", pid, groups)
		}
	}
	if env := e.exec(t, second, "env"); strings.Contains(env, "FIRST_SECRET") {
		t.Errorf("the second container of the image has the first's environment:\n%s", env)
	}
	spec := containerSpec(t, e.d, first)
	if !slices.Contains(spec.Linux.MaskedPaths, "/sys/devices/virtual/powercap") {
		t.Errorf("masked paths %v lack /sys/devices/virtual/powercap", spec.Linux.MaskedPaths)
	}
}

// containerSpec is the OCI spec of container id as containerd holds it.
func containerSpec(t *testing.T, d *daemon.Daemon, id string) *specs.Spec {
	t.Helper()
	c, err := containerdClient(t, d).LoadContainer(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// containerd's GHSA-fqw6-gf59-qr4w and GHSA-265r-hfxg-fhmg: a uid or gid past 2^32-1, from
// the image's USER or the config, wrapped around to root. Each is refused, or the process runs
// as the user ImageStatus named; never as root where something else was asked for.
func TestAdvisoryIDOverflow(t *testing.T) {
	e := newContainerEnv(t, "advisory-overflow")
	mustPull(t, e.d.Image, images.ParityUserOverflow)
	// The kubelet checks runAsNonRoot against ImageStatus's uid: as containerd, berth says
	// 4294967296 (not root), and so the container must not run as root.
	img := imageStatus(t, e.d.Image, images.ParityUserOverflow)
	t.Logf("ImageStatus of USER 4294967296: uid %v, username %q", img.GetUid(), img.GetUsername())
	check := func(name string, mutate func(*runtimeapi.ContainerConfig)) {
		t.Helper()
		resp, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
			Config: func() *runtimeapi.ContainerConfig {
				c := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name}, Image: &runtimeapi.ImageSpec{Image: busyboxRef}, Command: []string{"sleep", "3600"}}
				mutate(c)
				return c
			}()})
		if err != nil {
			t.Logf("%s: refused: %v", name, err)
			return
		}
		e.start(t, resp.ContainerId)
		st := e.exec(t, resp.ContainerId, "cat", "/proc/1/status")
		if uid, gid := strings.Fields(statusField(t, st, "Uid"))[0], strings.Fields(statusField(t, st, "Gid"))[0]; uid == "0" || gid == "0" {
			t.Errorf("%s: the process runs as uid %s gid %s", name, uid, gid)
		}
	}
	check("image-user", func(c *runtimeapi.ContainerConfig) { c.Image.Image, c.Command = images.ParityUserOverflow, nil })
	check("run-as-user", func(c *runtimeapi.ContainerConfig) {
		c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 1 << 32}}}
	})
	check("run-as-group", func(c *runtimeapi.ContainerConfig) {
		c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 1 << 32}}}
	})
	check("supplemental-group", func(c *runtimeapi.ContainerConfig) {
		c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 1000}, SupplementalGroups: []int64{1 << 32}}}
	})
}

// hostPID is the node's pid of a container's process, from its verbose status.
func hostPID(t *testing.T, e *containerEnv, id string) string {
	t.Helper()
	st, err := e.d.Runtime.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := regexp.MustCompile(`"pid":\s*(\d+)`).FindStringSubmatch(st.GetInfo()["info"])
	if pid == nil {
		t.Fatalf("no pid in the verbose status of %s", id)
	}
	return pid[1]
}

// containerd's GHSA-cxfp-7pvr-95ff: the containers of a user-namespaced pod were put outside
// the pod's cgroup, escaping its limits and the kubelet's accounting. Every cgroup of such a
// container's process is under the pod's cgroup parent.
func TestAdvisoryUserNamespacedPodStaysInItsCgroup(t *testing.T) {
	removeE2ECgroups(t)
	d := busyboxDaemon(t)
	cfg := podConfig("advisory-userns-cgroup")
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.CgroupParent = "/berth-e2e/advisory-userns-cgroup"
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(usernsHostID)
	e := runPodEnv(t, d, cfg)
	id := e.run(t, "app", nil)
	b, err := os.ReadFile("/proc/" + hostPID(t, e, id) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || strings.HasPrefix(parts[1], "name=") || parts[1] == "" && parts[2] == "/" {
			continue // named hierarchies (systemd's), and the unused v2 tree of a v1 node
		}
		if !strings.HasPrefix(parts[2], cfg.Linux.CgroupParent+"/") {
			t.Errorf("the container's process is in %s outside the pod's cgroup %s", line, cfg.Linux.CgroupParent)
		}
	}
}

// containerd's GHSA-mvff-h3cj-wj9c: whether a mount's source was relabelled (SELinux) was
// decided by its destination, so a pod could have the node's /etc relabelled for it. berth
// relabels nothing (this node has no SELinux; berth does not implement selinux_relabel): a
// mount of /etc asking for it leaves /etc's labels as they were.
func TestAdvisoryRelabelTouchesNoNodePath(t *testing.T) {
	e := newContainerEnv(t, "advisory-relabel")
	label := func() string {
		b := make([]byte, 256)
		n, err := unix.Lgetxattr("/etc", "security.selinux", b)
		if err != nil {
			return "none (" + err.Error() + ")"
		}
		return string(b[:n])
	}
	before := label()
	e.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		c.Mounts = []*runtimeapi.Mount{{HostPath: "/etc", ContainerPath: "/etc-of-the-node", Readonly: true, SelinuxRelabel: true}}
	})
	if after := label(); after != before {
		t.Errorf("/etc's SELinux label changed: %q, was %q", after, before)
	}
}

// CRI-O's CVE-2025-0750: the runtime's log handling (ReopenContainerLog) followed paths out of
// the pod's log directory, writing or unlinking node files. berth's container log stays in
// the pod's log directory: a log path that climbs out is refused, and a log file swapped for
// a symlink to a node file is not followed when the log is reopened.
func TestAdvisoryLogsStayInThePodsLogDirectory(t *testing.T) {
	e := newContainerEnv(t, "advisory-logs")
	_, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "climb"}, Image: &runtimeapi.ImageSpec{Image: busyboxRef},
			Command: []string{"sleep", "3600"}, LogPath: "../../../../tmp/berth-advisory-climb.log"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateContainer with a log path out of the pod's log directory: %v, want InvalidArgument", err)
	}
	victim := filepath.Join(t.TempDir(), "node-file")
	if err := os.WriteFile(victim, []byte("the node's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := e.run(t, "talker", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "while :; do echo talking; sleep 0.1; done"}
		c.LogPath = "talker.log"
	})
	logPath := filepath.Join(e.logDir, "talker.log")
	if err := os.Rename(logPath, logPath+".1"); err != nil { // the kubelet's rotation
		t.Fatal(err)
	}
	if err := os.Symlink(victim, logPath); err != nil {
		t.Fatal(err)
	}
	_, err = e.d.Runtime.ReopenContainerLog(ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
	t.Logf("ReopenContainerLog onto a symlink out of the directory: %v", err)
	time.Sleep(500 * time.Millisecond)
	if b, _ := os.ReadFile(victim); string(b) != "the node's\n" {
		t.Errorf("the node file the log was swapped for now holds %q", b)
	}
	if _, err := os.Lstat(victim); err != nil {
		t.Errorf("the node file is gone: %v", err)
	}
}
