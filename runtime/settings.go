package runtime

import (
	"os"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/containerd/v2/pkg/cap"

	"github.com/berth-runtime/berth/runtime/spec"
)

// hostSettings reads, once at start, the facts of this node and of berthd itself that shape
// every container spec.
func hostSettings(cgroupDriver, seccompRoot string, tolerateMissingHugetlb bool) spec.Settings {
	s := spec.Settings{CgroupDriver: cgroupDriver, SeccompProfileRoot: seccompRoot, TolerateMissingHugetlb: tolerateMissingHugetlb}
	if caps, err := cap.Current(); err == nil {
		s.Capabilities = caps
	}
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		s.MinOOMScoreAdj, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	s.CgroupV2 = cgroups.Mode() == cgroups.Unified
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil {
		s.AppArmorEnabled = strings.TrimSpace(string(b)) == "Y"
	}
	return s
}
