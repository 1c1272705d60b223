package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/sandbox"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/cgroup"
	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/runtime/namespace"
)

// Labels on berth's containerd container records.
const (
	labelKind         = "io.berth.kind"
	labelPodName      = "io.berth.pod.name"
	labelPodNamespace = "io.berth.pod.namespace"
	labelPodUID       = "io.berth.pod.uid"
	labelPodAttempt   = "io.berth.pod.attempt"

	kindSandbox = "sandbox"

	// sandboxExtension is the extension holding a sandbox's record.
	sandboxExtension = "io.berth.sandbox"
	sandboxTypeURL   = "io.berth.sandbox/v1"

	// The runtime recorded for sandboxes. A sandbox has no task of its own unless it needs an
	// infra process; containerd wants a runtime name on every record.
	runcRuntime = "io.containerd.runc.v2"
)

// sandboxRecord is what containerd keeps of a sandbox, enough to rebuild it after a restart.
type sandboxRecord struct {
	// Config is the CRI config, protobuf-encoded.
	Config         []byte          `json:"config"`
	CreatedAt      time.Time       `json:"createdAt"`
	State          string          `json:"state"`
	RuntimeHandler string          `json:"runtimeHandler,omitempty"`
	NetNS          string          `json:"netns,omitempty"`
	IPC            string          `json:"ipc,omitempty"`
	UTS            string          `json:"uts,omitempty"`
	Network        *cni.Attachment `json:"network,omitempty"`
	InfraPid       uint32          `json:"infraPid,omitempty"`
	OwnShim        bool            `json:"ownShim,omitempty"`
	// BootID is the node's boot id when the pod was made: a record from an earlier boot is of
	// a pod whose namespaces, files, infra process and tasks the reboot took.
	BootID string `json:"bootID,omitempty"`
}

// emptySpec stands for the OCI spec of a sandbox without a process; containerd requires one.
var emptySpec = &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec", Value: []byte("{}")}

func (sb *Sandbox) extension() (typeurl.Any, error) {
	cfg, err := proto.Marshal(sb.Config)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(sandboxRecord{
		Config: cfg, CreatedAt: sb.CreatedAt, State: sb.State, RuntimeHandler: sb.RuntimeHandler,
		NetNS: sb.NetNS, IPC: sb.IPC, UTS: sb.UTS, Network: sb.Network, InfraPid: sb.InfraPid,
		OwnShim: sb.OwnShim, BootID: sb.BootID,
	})
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: sandboxTypeURL, Value: b}, nil
}

// createRecord stores a new sandbox in containerd. A pod with its own shim is a containerd
// sandbox too: containerd runs the tasks of a sandbox's containers in the shim at the endpoint
// they are created with, and leaves that shim running when one of them is deleted.
func (r *Runtime) createRecord(ctx context.Context, sb *Sandbox) error {
	ext, err := sb.extension()
	if err != nil {
		return err
	}
	if sb.OwnShim {
		if _, err := r.client.SandboxStore().Create(ctx, sandbox.Sandbox{ID: sb.ID, Runtime: sandbox.RuntimeOpts{Name: runcRuntime}}); err != nil {
			return fmt.Errorf("record pod sandbox %s in containerd: %w", sb.ID, err)
		}
	}
	runtimeInfo, err := r.runtimeInfo(sb.RuntimeHandler)
	if err != nil {
		return err
	}
	md := sb.Config.GetMetadata()
	c := containers.Container{
		ID: sb.ID,
		Labels: map[string]string{
			labelKind: kindSandbox, labelPodName: md.GetName(), labelPodNamespace: md.GetNamespace(),
			labelPodUID: md.GetUid(), labelPodAttempt: strconv.FormatUint(uint64(md.GetAttempt()), 10),
		},
		Runtime:    runtimeInfo,
		Spec:       emptySpec,
		Extensions: map[string]typeurl.Any{sandboxExtension: ext},
	}
	if sb.OwnShim {
		c.SandboxID = sb.ID // the infra process's task, if the pod has one, runs in the pod's shim
	}
	if _, err := r.client.ContainerService().Create(ctx, c); err != nil {
		if sb.OwnShim {
			r.client.SandboxStore().Delete(context.WithoutCancel(ctx), sb.ID)
		}
		return fmt.Errorf("record pod sandbox %s in containerd: %w", sb.ID, err)
	}
	return nil
}

// saveRecord writes the sandbox's current state to its containerd record.
func (r *Runtime) saveRecord(ctx context.Context, sb *Sandbox) error {
	ext, err := sb.extension()
	if err != nil {
		return err
	}
	c := containers.Container{ID: sb.ID, Extensions: map[string]typeurl.Any{sandboxExtension: ext}}
	if _, err := r.client.ContainerService().Update(ctx, c, "extensions."+sandboxExtension); err != nil {
		return fmt.Errorf("update pod sandbox %s in containerd: %w", sb.ID, err)
	}
	return nil
}

// loadSandbox rebuilds a sandbox from its containerd record.
func (r *Runtime) loadSandbox(c containers.Container) (*Sandbox, error) {
	ext, ok := c.Extensions[sandboxExtension]
	if !ok {
		return nil, fmt.Errorf("pod sandbox record %s has no %s extension", c.ID, sandboxExtension)
	}
	var rec sandboxRecord
	if err := json.Unmarshal(ext.GetValue(), &rec); err != nil {
		return nil, fmt.Errorf("pod sandbox record %s: %w", c.ID, err)
	}
	cfg := &runtimeapi.PodSandboxConfig{}
	if err := proto.Unmarshal(rec.Config, cfg); err != nil {
		return nil, fmt.Errorf("pod sandbox record %s config: %w", c.ID, err)
	}
	sb := &Sandbox{
		ID: c.ID, Config: cfg, CreatedAt: rec.CreatedAt, Dir: r.sandboxDir(c.ID),
		RuntimeHandler: rec.RuntimeHandler, State: rec.State,
		NetNS: rec.NetNS, IPC: rec.IPC, UTS: rec.UTS, Network: rec.Network, InfraPid: rec.InfraPid,
		OwnShim: rec.OwnShim, Userns: podUsernsPin(r.sandboxDir(c.ID), cfg), BootID: rec.BootID,
	}
	if rec.BootID != "" && r.bootID != "" && rec.BootID != r.bootID {
		// The node rebooted since: the pod can never run a container again, and its infra
		// process's pid may be another process's now, never to be joined.
		sb.State, sb.InfraPid, sb.rebooted = SandboxNotReady, 0, true
	}
	return sb, nil
}

// podUsernsPin is where a pod with a user namespace of its own has it pinned; "" for other pods.
func podUsernsPin(dir string, cfg *runtimeapi.PodSandboxConfig) string {
	if _, _, ok := podUserns(cfg); !ok {
		return ""
	}
	return namespace.PinPath(filepath.Join(dir, "ns"), namespace.User)
}

func (r *Runtime) sandboxDir(id string) string { return filepath.Join(r.stateDir, "pods", id) }

// runtimeInfo is the containerd runtime of a runtime handler: the runc v2 shim, running the
// handler's OCI runtime executable when it names one (the shim's BinaryName option), and told
// to make systemd scopes when the node's cgroup driver is systemd (SystemdCgroup, as
// containerd's CRI sets it from its runtime's options): runc reads a "slice:prefix:name"
// cgroups path as a directory name otherwise.
func (r *Runtime) runtimeInfo(handler string) (containers.RuntimeInfo, error) {
	bin := ""
	if handler != "" && handler != DefaultHandler {
		var ok bool
		if bin, ok = r.handlers[handler]; !ok {
			return containers.RuntimeInfo{}, fmt.Errorf("runtime handler %q is not configured: %w", handler, errdefs.ErrInvalidArgument)
		}
	}
	info := containers.RuntimeInfo{Name: runcRuntime}
	systemd := r.cgroupDriver == cgroup.Systemd
	if bin != "" || systemd {
		opts, err := typeurl.MarshalAny(&runcoptions.Options{BinaryName: bin, SystemdCgroup: systemd})
		if err != nil {
			return containers.RuntimeInfo{}, err
		}
		info.Options = opts
	}
	return info, nil
}
