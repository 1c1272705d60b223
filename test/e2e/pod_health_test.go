package e2e

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A shared-PID pod whose infra process dies has lost its PID namespace: no container of it can
// start again. It is reported NOTREADY (and as a pod stopped event, for the evented PLEG) so
// that the kubelet makes a new pod, its container is stopped, and stop and remove still clean
// it up. Before, it stayed READY for ever and every StartContainer failed.
func TestPodWithADeadInfraProcessIsNotReady(t *testing.T) {
	e := newSharedPIDEnv(t)
	sctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	events, err := e.d.Runtime.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := e.run(t, "app", nil)

	infra := infraPid(t, e)
	if err := syscall.Kill(infra, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	waitNotReady(t, e, "the pod is still READY after its infra process died")
	for {
		ev, err := events.Recv()
		if err != nil {
			t.Fatalf("no pod stopped event: %v", err)
		}
		if ev.ContainerId == e.pod && ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
			if ev.PodSandboxStatus.GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
				t.Errorf("stopped event says the pod is %v", ev.PodSandboxStatus.GetState())
			}
			break
		}
	}
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("the pod's container is %v, want EXITED", st.State)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// newSharedPIDEnv is newContainerEnv's pod, sharing its PID namespace.
func newSharedPIDEnv(t *testing.T) *containerEnv {
	t.Helper()
	d := busyboxDaemon(t)
	cfg := podConfig("dead-infra")
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	return runPodEnv(t, d, cfg)
}

// The same when the infra process died while berthd was down: the restarted berthd finds it.
func TestPodWhoseInfraDiedWhileBerthdWasDownIsNotReady(t *testing.T) {
	e := newSharedPIDEnv(t)
	infra := infraPid(t, e)
	if err := e.d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(infra, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Run(); err != nil {
		t.Fatal(err)
	}
	waitNotReady(t, e, "the restarted berthd still reports the pod READY")
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// infraPid is the pid of the pod's infra process, from its verbose status.
func infraPid(t *testing.T, e *containerEnv) int {
	t.Helper()
	resp, err := e.d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.pod, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("no infra pid in %v: %v", resp.Info, err)
	}
	return info.Pid
}

// waitNotReady waits up to 10 s for the pod to be NOTREADY, failing with msg.
func waitNotReady(t *testing.T, e *containerEnv, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for podStatus(t, e.d, e.pod).State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
