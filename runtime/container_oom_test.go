package runtime

import (
	"testing"
	"time"
)

// An OOM kill the shim reports a moment after the exit (a slow node; with the systemd driver the
// scope and its oom_kill count are gone by then) is still the container's reason; a 137 of
// berth's own SIGKILL waits for no event.
func TestOOMEventTrailingTheExit(t *testing.T) {
	r := &Runtime{sandboxes: newSandboxStore()}
	c := &Container{ID: "c1", SandboxID: "gone"}
	go func() { time.Sleep(700 * time.Millisecond); c.oomReported.Store(true) }()
	if !r.oomKilled(c, 137) {
		t.Error("an OOM event 700 ms after the exit was missed")
	}

	killed := &Container{ID: "c2", SandboxID: "gone"}
	killed.killedByBerth.Store(true)
	start := time.Now()
	if r.oomKilled(killed, 137) {
		t.Error("berth's own SIGKILL read as an OOM kill")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a 137 of berth's own SIGKILL waited %s for an OOM event", d)
	}
}
