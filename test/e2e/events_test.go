package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Events arrive in order, with the pod's and the containers' statuses, for every step of a
// container's life (an exit it makes itself included) and of its pod's.
func TestContainerEvents(t *testing.T) {
	e := newContainerEnv(t, "events")
	sctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	stream, err := e.d.Runtime.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// A second subscriber that never reads must not hold anything back.
	idle, err := e.d.Runtime.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_ = idle
	crictl := exec.CommandContext(sctx, tool(t, "crictl"), "--runtime-endpoint", e.d.Endpoint(), "events", "-o", "json")
	var crictlOut syncBuffer
	crictl.Stdout = &crictlOut
	if err := crictl.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); crictl.Wait() }()
	time.Sleep(300 * time.Millisecond) // the streams are open before the first event

	id := e.run(t, "short", func(c *runtimeapi.ContainerConfig) { c.Command = []string{"sh", "-c", "exit 3"} })
	e.waitExit(t, id)
	if _, err := e.d.Runtime.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.pod}); err != nil {
		t.Fatal(err)
	}

	type step struct {
		id  string
		typ runtimeapi.ContainerEventType
	}
	want := []step{
		{id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
		{e.pod, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{e.pod, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
	}
	var last int64
	for i, w := range want {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.ContainerId != w.id || ev.ContainerEventType != w.typ {
			t.Fatalf("event %d = %s %s, want %s %s", i, ev.ContainerId, ev.ContainerEventType, w.id, w.typ)
		}
		if ev.CreatedAt < last || ev.GetPodSandboxStatus().GetId() != e.pod {
			t.Errorf("event %d: at %d (after %d), pod status %v", i, ev.CreatedAt, last, ev.GetPodSandboxStatus())
		}
		last = ev.CreatedAt
		if w.typ == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT && w.id == id {
			if len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].ExitCode != 3 || ev.ContainersStatuses[0].State != runtimeapi.ContainerState_CONTAINER_EXITED {
				t.Errorf("stopped event statuses %v, want the container exited with 3", ev.ContainersStatuses)
			}
		}
	}
	waitFor(t, "crictl events to show the deletion", func() bool {
		return strings.Count(crictlOut.String(), "CONTAINER_DELETED_EVENT") >= 2
	})
}
