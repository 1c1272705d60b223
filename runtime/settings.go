package runtime

import (
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/berth-runtime/berth/runtime/spec"
)

// hostSettings reads, once at start, the facts of this node and of berthd itself that shape
// every container spec.
func hostSettings(opts Options) spec.Settings {
	s := spec.Settings{CgroupDriver: opts.CgroupDriver, SeccompProfileRoot: opts.SeccompProfileRoot,
		TolerateMissingHugetlb: opts.TolerateMissingHugetlb, Ulimits: opts.Ulimits}
	if caps, err := cap.Current(); err == nil {
		s.Capabilities = caps
	}
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		s.MinOOMScoreAdj, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if len(opts.CDISpecDirs) > 0 {
		if reg, err := newCDIRegistry(opts.CDISpecDirs, opts.Logger); err == nil {
			s.CDI = reg
		} else if opts.Logger != nil {
			opts.Logger.Error("CDI is off: its spec directories cannot be used", "dirs", opts.CDISpecDirs, "error", err)
		}
	}
	s.CgroupV2 = cgroups.Mode() == cgroups.Unified
	if s.CgroupV2 {
		s.CgroupMountOptions = cgroup2Options("/proc/self/mountinfo")
	}
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil {
		s.AppArmorEnabled = strings.TrimSpace(string(b)) == "Y"
	}
	return s
}

// cgroup2Options are the options of the node's /sys/fs/cgroup (cgroup2) mount that a container's
// own cgroup mount must keep when it shares the node's cgroup namespace (see
// spec.Settings.CgroupMountOptions).
func cgroup2Options(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	mounts, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range mounts {
		if m.Mountpoint != "/sys/fs/cgroup" || m.FSType != "cgroup2" {
			continue
		}
		for _, o := range strings.Split(m.VFSOptions, ",") {
			if o == "nsdelegate" || o == "memory_recursiveprot" {
				out = append(out, o)
			}
		}
	}
	return out
}

// cdiRegistry reads the CDI spec directories again before each use: device plugins and DRA
// drivers write their specs at any time, and a container that asks for none costs nothing.
type cdiRegistry struct {
	cache *cdi.Cache
	log   *slog.Logger
}

func newCDIRegistry(dirs []string, log *slog.Logger) (cdiRegistry, error) {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	return cdiRegistry{cache: cache, log: log}, err
}

// InjectDevices applies devices to s. A spec file that does not parse is logged and left out,
// not fatal: one vendor's broken file must not keep another's devices from a container.
func (c cdiRegistry) InjectDevices(s *specs.Spec, devices ...string) ([]string, error) {
	if err := c.cache.Refresh(); err != nil && c.log != nil {
		c.log.Warn("a CDI spec could not be read", "error", err)
	}
	return c.cache.InjectDevices(s, devices...)
}
