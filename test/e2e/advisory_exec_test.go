package e2e

import (
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerd's GHSA-7jxh-36q5-gcqv: an ExecSync whose command leaves a process behind that
// holds its output open waited for that output to end, past the exec's exit and its timeout,
// holding a kubelet probe worker (and its goroutines) for ever. It returns once the command
// has exited and its output is drained for a moment, with what it wrote.
func TestAdvisoryExecSyncDoesNotWaitForOutputHeldOpen(t *testing.T) {
	e := newContainerEnv(t, "advisory-drain")
	id := e.run(t, "app", nil)
	start := time.Now()
	resp, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id,
		Cmd: []string{"sh", "-c", "sleep 300 & echo started"}, Timeout: 30})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ExecSync: %v", err)
	}
	if strings.TrimSpace(string(resp.Stdout)) != "started" || resp.ExitCode != 0 {
		t.Errorf("ExecSync: stdout %q, exit %d; want started, 0", resp.Stdout, resp.ExitCode)
	}
	if took > 10*time.Second {
		t.Errorf("ExecSync took %s: it waited for the output the background process holds open", took)
	}
	t.Logf("ExecSync with its output held open returned after %s", took)
}
