package e2e

import (
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
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

// containerd's GHSA-5ffw-gxpp-mxpf: ExecSync kept all of a command's output in memory, so a
// probe writing without end grew the runtime without bound. berth keeps 16 MiB of each stream
// (what the kubelet's message limit takes), and berthd's memory stays bounded however much
// comes.
func TestAdvisoryExecSyncOutputIsBounded(t *testing.T) {
	metrics := freeAddress(t)
	e := newContainerEnv(t, "advisory-output", "--metrics-address", metrics)
	id := e.run(t, "app", nil)
	before := usageOf(t, e.d, metrics)
	resp, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id,
		Cmd: []string{"sh", "-c", "head -c 300000000 /dev/zero; head -c 300000000 /dev/zero >&2"}, Timeout: 60})
	if err != nil {
		t.Fatalf("ExecSync of 600 MB: %v", err)
	}
	after := usageOf(t, e.d, metrics)
	t.Logf("ExecSync of 300 MB on each stream: %d + %d bytes back; berthd RSS %d -> %d KiB", len(resp.Stdout), len(resp.Stderr), before.rssKiB, after.rssKiB)
	if len(resp.Stdout)+len(resp.Stderr) > runtime.ExecResultBudget {
		t.Errorf("the answer holds %d bytes, more than the kubelet takes", len(resp.Stdout)+len(resp.Stderr))
	}
	if grew := after.rssKiB - before.rssKiB; grew > 128<<10 {
		t.Errorf("berthd's resident memory grew by %d MiB", grew>>10)
	}
}
