package runtime

import (
	"log/slog"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestASlowSubscriberIsCutOffNotWaitedFor(t *testing.T) {
	r := &Runtime{containers: newContainerStore(), log: slog.New(slog.DiscardHandler)}
	sb := &Sandbox{ID: "pod1", Config: &runtimeapi.PodSandboxConfig{}}
	sb.publish()
	slow, cancelSlow := r.Subscribe()
	defer cancelSlow()
	fast, cancelFast := r.Subscribe()
	defer cancelFast()
	got := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range fast {
			got++
			if got == eventQueue+10 {
				return
			}
		}
	}()
	start := time.Now()
	for range eventQueue + 10 {
		r.emit(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, "pod1", sb)
		if len(fast) > eventQueue/2 {
			time.Sleep(time.Millisecond) // a reader that keeps up
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("emitting took %s with a subscriber that never reads", d)
	}
	<-done
	n := 0
	for range slow {
		n++
	}
	if n != eventQueue {
		t.Errorf("the slow subscriber got %d events before its channel closed, want %d", n, eventQueue)
	}
}
