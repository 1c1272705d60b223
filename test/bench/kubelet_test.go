package main

import (
	"testing"
	"time"
)

func TestStartSLIs(t *testing.T) {
	// Lines as the kubelet of KUBERNETES_VERSION logs them; the second is another runtime's pod.
	log := `I1201 01:33:08.664597   18422 pod_startup_latency_tracker.go:144] "Observed pod startup duration" pod="default/berth-seq-3" podStartSLOduration=2.664590144 podStartE2EDuration="2.664590144s" totalImagesPullingTime="0s" totalInitContainerRuntime="0s" isStatefulPod=false podCreationTimestamp="2026-12-01 01:33:06 +0000 UTC" imagePullSessionsCount=0 imagePullSessionsStartsCount=0 observedRunningTime="2026-12-01 01:33:08.664414811 +0000 UTC m=+4.875390784" watchObservedRunningTime="2026-12-01 01:33:08.664590144 +0000 UTC m=+4.875566117"
I1201 01:33:09.000000   18422 pod_startup_latency_tracker.go:144] "Observed pod startup duration" pod="default/containerd-seq-0" podStartSLOduration=1.5 podStartE2EDuration="1.5s" podCreationTimestamp="2026-12-01 01:33:07 +0000 UTC" watchObservedRunningTime="2026-12-01 01:33:08.5 +0000 UTC m=+5"
`
	got := startSLIs(log, "berth-seq-")
	if len(got) != 1 {
		t.Fatalf("got %d SLIs, want 1: %+v", len(got), got)
	}
	want := startSLI{pod: "berth-seq-3", duration: 2664590144 * time.Nanosecond,
		end: time.Date(2026, 12, 1, 1, 33, 8, 664590144, time.UTC)}
	if got[0].pod != want.pod || got[0].duration != want.duration || !got[0].end.Equal(want.end) {
		t.Errorf("got %+v, want %+v", got[0], want)
	}
}
