package runtime

import "os"

// CgroupDriver resolves the configured cgroup driver: "auto" becomes "systemd" when systemd is the
// init system (as the kubelet's own detection does) and "cgroupfs" otherwise.
func CgroupDriver(configured string) string {
	if configured != "auto" {
		return configured
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		return "systemd"
	}
	return "cgroupfs"
}
