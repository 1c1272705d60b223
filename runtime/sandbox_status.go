package runtime

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/cni"
)

// SandboxView is a consistent copy of a sandbox's state, for status and listing.
type SandboxView struct {
	ID             string
	Config         *runtimeapi.PodSandboxConfig
	CreatedAt      time.Time
	RuntimeHandler string
	State          string
	// NetNS, IPC and UTS are the pod's pinned namespaces, empty for the node's.
	NetNS, IPC, UTS string
	Network         *cni.Attachment
	// InfraPid is the pid of the pod's infra process, 0 when it has none.
	InfraPid uint32
}

// view returns the last published state. It takes no lock, so that status and list calls never
// wait for a slow operation (a CNI DEL, say) on the pod.
func (sb *Sandbox) view() SandboxView {
	if v := sb.published.Load(); v != nil {
		return *v
	}
	return SandboxView{ID: sb.ID, Config: sb.Config, CreatedAt: sb.CreatedAt, RuntimeHandler: sb.RuntimeHandler, State: SandboxNotReady}
}

// publish makes the sandbox's current state what view returns. sb.mu must be held (or the
// sandbox not yet shared).
func (sb *Sandbox) publish() {
	sb.published.Store(&SandboxView{ID: sb.ID, Config: sb.Config, CreatedAt: sb.CreatedAt, RuntimeHandler: sb.RuntimeHandler,
		State: sb.State, NetNS: sb.NetNS, IPC: sb.IPC, UTS: sb.UTS, Network: sb.Network, InfraPid: sb.InfraPid})
}

// PodSandbox returns the sandbox id (or a unique prefix of it) names.
func (r *Runtime) PodSandbox(ctx context.Context, id string) (SandboxView, error) {
	sb, err := r.loadedSandbox(ctx, id)
	if err != nil {
		return SandboxView{}, err
	}
	return sb.view(), nil
}

// PodSandboxes returns every sandbox, oldest first.
func (r *Runtime) PodSandboxes(ctx context.Context) ([]SandboxView, error) {
	if err := r.waitLoaded(ctx); err != nil {
		return nil, err
	}
	all := r.sandboxes.list()
	out := make([]SandboxView, len(all))
	for i, sb := range all {
		out[i] = sb.view()
	}
	return out, nil
}
