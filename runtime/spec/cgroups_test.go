package spec

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeCgroups has, or lacks, the hugetlb controller everywhere, and records where it was asked.
type fakeCgroups struct {
	hugetlb bool
	asked   *string
}

func (f fakeCgroups) Swap() bool { return false }

func (f fakeCgroups) Hugetlb(path string) bool {
	if f.asked != nil {
		*f.asked = path
	}
	return f.hugetlb
}

// kubeletHugepages is what the kubelet sends for a container that asks for no hugepages on a node
// with 2 MiB and 1 GiB pages.
var kubeletHugepages = []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 0}}

func TestHugepageLimits(t *testing.T) {
	tests := []struct {
		desc        string
		hugetlb     bool
		tolerate    bool
		wantLimits  int
		wantDropped bool
		wantErr     func(error) bool
	}{
		{desc: "controller present: limits kept", hugetlb: true, tolerate: true, wantLimits: 2},
		{desc: "controller present, not tolerating: limits kept", hugetlb: true, wantLimits: 2},
		{desc: "controller missing: limits left out", tolerate: true, wantDropped: true},
		{desc: "controller missing, not tolerating: FailedPrecondition", wantErr: errdefs.IsFailedPrecondition},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			var asked string
			r, err := generate(t, func(in *Input) {
				in.Settings.Cgroups = fakeCgroups{hugetlb: test.hugetlb, asked: &asked}
				in.Settings.TolerateMissingHugetlb = test.tolerate
				in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 2, HugepageLimits: kubeletHugepages}
			})
			if test.wantErr != nil {
				if !test.wantErr(err) {
					t.Fatalf("error = %v, want FailedPrecondition", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(r.Spec.Linux.Resources.HugepageLimits); got != test.wantLimits {
				t.Errorf("hugepage limits = %v, want %d", r.Spec.Linux.Resources.HugepageLimits, test.wantLimits)
			}
			if r.HugepageLimitsDropped != test.wantDropped {
				t.Errorf("dropped = %v, want %v", r.HugepageLimitsDropped, test.wantDropped)
			}
			if asked != "/kubepods/pod1/c1" {
				t.Errorf("controller asked about %q, want the container's cgroups path", asked)
			}
		})
	}
}

func TestHugepageLimitsOnUpdate(t *testing.T) {
	r := mustGenerate(t, nil)
	set := Settings{Cgroups: fakeCgroups{}, TolerateMissingHugetlb: true}
	dropped, err := ApplyResources(set, r.Spec, &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 30, HugepageLimits: kubeletHugepages})
	if err != nil || !dropped || len(r.Spec.Linux.Resources.HugepageLimits) != 0 || *r.Spec.Linux.Resources.Memory.Limit != 1<<30 {
		t.Errorf("update without hugetlb: dropped=%v err=%v limits=%v", dropped, err, r.Spec.Linux.Resources.HugepageLimits)
	}
	set.TolerateMissingHugetlb = false
	if _, err := ApplyResources(set, r.Spec, &runtimeapi.LinuxContainerResources{HugepageLimits: kubeletHugepages}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("update without hugetlb, not tolerating: %v, want FailedPrecondition", err)
	}
}

func TestRealCgroupsHugetlb(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// This machine's hybrid layout: v1 hierarchies without hugetlb, a v2 one with no controller.
	hybrid := write("hybrid", `31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`)
	withHugetlb := write("v1", "41 30 0:38 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n")
	root := filepath.Join(dir, "v2")
	write("v2/cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
	write("v2/kubepods/cgroup.controllers", "cpu memory pids\n")
	write("v2/kubepods/burstable/cgroup.controllers", "cpu memory hugetlb pids\n")
	write("v2/kubepods.slice/kubepods-burstable.slice/cgroup.controllers", "cpu memory hugetlb\n")
	write("v2/kubepods.slice/kubepods-besteffort.slice/cgroup.controllers", "cpu memory\n")

	v1 := func(mountinfo string) func() bool { return func() bool { return v1Mounted(mountinfo, "hugetlb") } }
	tests := []struct {
		desc string
		c    realCgroups
		path string
		want bool
	}{
		{"v1 without a hugetlb hierarchy", realCgroups{v1Hugetlb: v1(hybrid)}, "/kubepods/pod1/c1", false},
		{"v1 with a hugetlb hierarchy", realCgroups{v1Hugetlb: v1(withHugetlb)}, "/kubepods/pod1/c1", true},
		{"v1, no mountinfo", realCgroups{v1Hugetlb: v1(filepath.Join(dir, "none"))}, "/x/c1", false},
		{"v2, parent without hugetlb", realCgroups{v2: true, root: root}, "/kubepods/pod1/c1", false},
		{"v2, pod cgroup not made yet: its parent decides", realCgroups{v2: true, root: root}, "/kubepods/burstable/pod1/c1", true},
		{"v2, no parent: the root decides", realCgroups{v2: true, root: root}, "/berth/c1", true},
		{"v2 systemd, slice with hugetlb", realCgroups{v2: true, root: root, driver: "systemd"}, "kubepods-burstable.slice:berth:c1", true},
		{"v2 systemd, slice without hugetlb", realCgroups{v2: true, root: root, driver: "systemd"}, "kubepods-besteffort-pod1.slice:berth:c1", false},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if got := test.c.Hugetlb(test.path); got != test.want {
				t.Errorf("Hugetlb(%q) = %v, want %v", test.path, got, test.want)
			}
		})
	}
}

// ContainerStatus reports resources as applied: a hugepage limit left out, an oom_score_adj
// raised to berthd's own, the swap limit the node set, not what was asked.
func TestAppliedResources(t *testing.T) {
	r, err := generate(t, func(in *Input) {
		in.Settings.MinOOMScoreAdj = 0
		in.Settings.TolerateMissingHugetlb = true
		in.Settings.Cgroups = fakeCgroups{}
		in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{
			CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 1 << 27, OomScoreAdj: -997,
			HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 22}},
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	got := AppliedResources(r.Spec)
	if got.OomScoreAdj != 0 || len(got.HugepageLimits) != 0 || got.CpuShares != 512 || got.CpuQuota != 50000 ||
		got.CpuPeriod != 100000 || got.MemoryLimitInBytes != 1<<27 {
		t.Errorf("applied %v", got)
	}
}
