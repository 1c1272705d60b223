package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/namespace"
)

// healthInterval is how often ready pods are checked for a dead infra process or lost
// namespaces: the kubelet's generic PLEG relists every second.
const healthInterval = time.Second

// watchPodHealth checks every ready pod each healthInterval until ctx ends (see podGone) and
// marks the ones that can no longer run a container NOTREADY (markPodGone).
func (r *Runtime) watchPodHealth(ctx context.Context) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastSweep) >= pendingSweepEvery {
			r.sweepPendingCgroups(ctx)
			lastSweep = time.Now()
		}
		for _, sb := range r.sandboxes.list() {
			v := sb.view()
			if v.State != SandboxReady {
				continue
			}
			if why := podGone(v, sharesPID(v.Config)); why != nil {
				r.markPodGone(ctx, sb, why)
			}
		}
	}
}

// podGone says why a ready pod can no longer run a container, or nil: its infra process (the
// init of its shared PID namespace, whose death killed every process in it) is gone, or a
// namespace it pinned is (a node that rebooted lost /run).
func podGone(v SandboxView, sharedPID bool) error {
	for _, pin := range []string{v.NetNS, v.IPC, v.UTS} {
		if pin == "" {
			continue
		}
		if err := namespace.Pinned(pin); err != nil {
			return fmt.Errorf("its namespace pin %s is gone: %w", filepath.Base(pin), err)
		}
	}
	if sharedPID {
		if v.InfraPid == 0 {
			return errors.New("it shares its PID namespace but has no infra process")
		}
		if !infraAlive(v.InfraPid) {
			return fmt.Errorf("its infra process %d is gone, and its PID namespace with it", v.InfraPid)
		}
	}
	return nil
}

// infraAlive reports whether pid is still a live berth-pause (or runc's init about to become
// it: runc start returns a moment before the execve): a zombie, or a pid the kernel gave to
// another program since, is not.
func infraAlive(pid uint32) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the command's closing parenthesis.
	head, rest, ok := strings.Cut(string(stat), ") ")
	if !ok || strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X") {
		return false
	}
	_, comm, _ := strings.Cut(head, " (")
	return comm == "pause" || strings.HasPrefix(comm, "runc")
}

// markPodGone reports a pod that can no longer run a container NOTREADY, so that the kubelet
// makes a new one (it recreates a sandbox only when it is not ready), and stops its remaining
// containers. StopPodSandbox and RemovePodSandbox then clean it up as any other.
func (r *Runtime) markPodGone(ctx context.Context, sb *Sandbox, why error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.removed || sb.State != SandboxReady {
		return // stopped or removed meanwhile
	}
	if why = podGone(sb.view(), sharesPID(sb.Config)); why == nil {
		return
	}
	r.log.Warn("pod sandbox can no longer run a container; reporting it NOTREADY", "sandbox", sb.ID, "reason", why)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, c := range r.containers.list(sb.ID) {
		if err := r.stopContainer(sctx, c, 0); err != nil {
			r.log.Warn("cannot stop a container of a pod that is gone", "sandbox", sb.ID, "container", c.ID, "error", err)
		}
	}
	sb.State = SandboxNotReady
	sb.publish()
	r.emit(runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, sb.ID, sb)
	if err := r.saveRecord(sctx, sb); err != nil {
		r.log.Warn("cannot save a pod's NOTREADY state", "sandbox", sb.ID, "error", err)
	}
}
