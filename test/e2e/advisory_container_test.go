package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
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
