package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kill -9 of the managed containerd with running pods: berthd restarts it, the pods stay READY,
// their containers RUNNING, their logs keep growing, and an exit after the restart is seen.
func TestPodsSurviveAKilledContainerd(t *testing.T) {
	e := newContainerEnv(t, "ctrdkill")
	const pods = 20
	type pc struct{ pod, ctr, log string }
	var all []pc
	for i := range pods {
		pod := e.pod
		if i > 0 {
			cfg := podConfig(fmt.Sprintf("ctrdkill-%d", i))
			cfg.LogDirectory = t.TempDir()
			cfg.Linux.CgroupParent = "/berth-e2e/ctrdkill"
			pod = runPod(t, e.d, cfg)
			e2 := &containerEnv{d: e.d, pod: pod, podCfg: cfg, logDir: cfg.LogDirectory}
			id := e2.run(t, "ticker", func(c *runtimeapi.ContainerConfig) {
				c.Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done"}
			})
			all = append(all, pc{pod, id, cfg.LogDirectory + "/ticker.log"})
			continue
		}
		id := e.run(t, "ticker", func(c *runtimeapi.ContainerConfig) {
			c.Command = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done"}
		})
		all = append(all, pc{pod, id, e.logDir + "/ticker.log"})
	}
	quitter := e.run(t, "quitter", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "sleep 4; exit 5"}
	})

	old := e.d.ContainerdPid()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new containerd", func() bool {
		pid := e.d.ContainerdPid()
		return pid != 0 && pid != old && processAlive(pid)
	})
	time.Sleep(time.Second)

	for _, p := range all {
		st, err := e.d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.pod})
		if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s after containerd was killed: %v %v", p.pod, st.GetStatus().GetState(), err)
		}
		if cs := e.status(t, p.ctr); cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s after containerd was killed: %v (%s %s)", p.ctr, cs.State, cs.Reason, cs.Message)
		}
	}
	for _, p := range all {
		before := len(logEntries(t, p.log))
		waitFor(t, "the log to keep growing", func() bool { return len(logEntries(t, p.log)) > before+3 })
	}
	e.exec(t, all[0].ctr, "true") // exec goes through the new containerd
	if st := e.waitExit(t, quitter); st.ExitCode != 5 {
		t.Errorf("exit after the restart: code %d (%s %s), want 5", st.ExitCode, st.Reason, st.Message)
	}
}
