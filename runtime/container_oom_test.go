package runtime

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// An exit by a SIGKILL berth did not send is an OOM kill when the kernel's log says so, even
// with no event from the shim (with the systemd driver the scope and its oom_kill count are
// gone by then); when the log cannot be read, an OOM event that trails the exit is waited for;
// a 137 of berth's own SIGKILL waits for nothing.
func TestOOMKilledReason(t *testing.T) {
	unreadable := func(string) (bool, error) { return false, errors.New("no /dev/kmsg") }
	logged := func(leaf string) func(string) (bool, error) {
		return func(l string) (bool, error) { return l == leaf, nil }
	}
	for _, tc := range []struct {
		desc          string
		log           func(string) (bool, error)
		code          uint32
		killedByBerth bool
		eventAfter    time.Duration // 0: no OOM event from the shim
		want          bool
		maxWait       time.Duration
	}{
		{desc: "the kernel's log records the kill, no event", log: logged("c1"), code: 137, want: true, maxWait: 100 * time.Millisecond},
		{desc: "the kernel's log records no kill: a SIGKILL from elsewhere", log: logged("other"), code: 137, want: false, maxWait: 100 * time.Millisecond},
		{desc: "no kernel log: an event 700 ms after the exit", log: unreadable, code: 137, eventAfter: 700 * time.Millisecond, want: true, maxWait: oomKilledWait},
		{desc: "no kernel log, no event: Error after the wait", log: unreadable, code: 137, want: false, maxWait: oomKilledWait + 500*time.Millisecond},
		{desc: "berth's own SIGKILL", log: logged("c1"), code: 137, killedByBerth: true, want: false, maxWait: 100 * time.Millisecond},
		{desc: "an exit code that is no kill", log: logged("c1"), code: 1, want: false, maxWait: 100 * time.Millisecond},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := &Runtime{sandboxes: newSandboxStore(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), oomLog: tc.log}
			c := &Container{ID: "c1", SandboxID: "gone"}
			c.killedByBerth.Store(tc.killedByBerth)
			if tc.eventAfter > 0 {
				go func() { time.Sleep(tc.eventAfter); c.oomReported.Store(true) }()
			}
			start := time.Now()
			if got := r.oomKilled(c, tc.code); got != tc.want {
				t.Errorf("oomKilled = %v, want %v", got, tc.want)
			}
			if d := time.Since(start); d > tc.maxWait {
				t.Errorf("took %s, want at most %s", d, tc.maxWait)
			}
		})
	}
}
