package engine

import (
	"slices"
	"testing"
)

// containerd, started by a berthd that systemd runs as a Type=notify unit, must not speak for
// the unit: it sd_notifies READY and STOPPING itself whenever NOTIFY_SOCKET is set.
func TestChildEnvLeavesOutSystemdsNotification(t *testing.T) {
	env := []string{"PATH=/usr/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=30000000",
		"WATCHDOG_PID=1", "LISTEN_FDS=1", "HOME=/root", "NOTIFY_SOCKETS_ARE_FUN=1"}
	got := childEnv(env)
	want := []string{"PATH=/usr/bin", "HOME=/root", "NOTIFY_SOCKETS_ARE_FUN=1"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv = %q, want %q", got, want)
	}
	if len(env) != 7 {
		t.Errorf("childEnv changed its argument: %q", env)
	}
}
