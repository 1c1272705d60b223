package cri

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/moby/sys/signal"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// Containers is what the RuntimeService needs from runtime/ for containers.
type Containers interface {
	CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout int64) error
	RemoveContainer(ctx context.Context, id string) error
	Container(ctx context.Context, id string) (runtime.ContainerView, error)
	Containers(ctx context.Context) ([]runtime.ContainerView, error)
	ContainerSpec(ctx context.Context, id string) (*specs.Spec, error)
	UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.LinuxContainerResources) error
	ReopenContainerLog(ctx context.Context, id string) error
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*runtime.ExecResult, error)
}

// CreateContainer creates a container in a pod sandbox.
func (s *RuntimeService) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("pod_sandbox_id: empty")
	}
	id, err := s.containers.CreateContainer(ctx, req.GetPodSandboxId(), req.GetConfig())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// StartContainer starts a created container.
func (s *RuntimeService) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	if err := s.containers.StartContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops a container. Per the CRI (api.proto) it is idempotent.
func (s *RuntimeService) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	if req.GetTimeout() < 0 {
		return nil, invalid("timeout: %d is negative", req.GetTimeout())
	}
	if err := s.containers.StopContainer(ctx, req.GetContainerId(), req.GetTimeout()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container. Per the CRI (api.proto) it is idempotent.
func (s *RuntimeService) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	if err := s.containers.RemoveContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// ListContainers lists containers matching the filter: id (or prefix), state, pod and labels.
func (s *RuntimeService) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	all, err := s.containers.Containers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	f := req.GetFilter()
	resp := &runtimeapi.ListContainersResponse{}
	for _, v := range all {
		switch {
		case f.GetId() != "" && !strings.HasPrefix(v.ID, f.GetId()):
			continue
		case f.GetPodSandboxId() != "" && !strings.HasPrefix(v.SandboxID, f.GetPodSandboxId()):
			continue
		case f.GetState() != nil && f.GetState().GetState() != containerState(v.State.State):
			continue
		case !labelsMatch(v.Config.GetLabels(), f.GetLabelSelector()):
			continue
		}
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id: v.ID, PodSandboxId: v.SandboxID, Metadata: v.Config.GetMetadata(),
			Image: &runtimeapi.ImageSpec{Image: v.ImageName}, ImageRef: v.ImageRef, ImageId: v.ImageRef,
			State: containerState(v.State.State), CreatedAt: v.State.CreatedAt.UnixNano(),
			Labels: v.Config.GetLabels(), Annotations: v.Config.GetAnnotations(),
		})
	}
	return resp, nil
}

// ContainerStatus describes a container; an unknown id is NotFound.
func (s *RuntimeService) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	v, err := s.containers.Container(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	st := containerStatus(v)
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.GetVerbose() {
		info := map[string]any{"sandboxID": v.SandboxID, "pid": v.State.Pid}
		if sp, err := s.containers.ContainerSpec(ctx, v.ID); err == nil {
			info["runtimeSpec"] = sp
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// containerStatus is the CRI status of a container.
func containerStatus(v runtime.ContainerView) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id: v.ID, Metadata: v.Config.GetMetadata(), State: containerState(v.State.State),
		CreatedAt: v.State.CreatedAt.UnixNano(), ExitCode: v.State.ExitCode,
		Image: &runtimeapi.ImageSpec{Image: v.ImageName}, ImageRef: v.ImageRef, ImageId: v.ImageRef,
		Reason: v.State.Reason, Message: v.State.Message,
		Labels: v.Config.GetLabels(), Annotations: v.Config.GetAnnotations(),
		Mounts: v.Config.GetMounts(), LogPath: v.LogPath,
		User: &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
			Uid: int64(v.UID), Gid: int64(v.GID), SupplementalGroups: int64s(v.Groups),
		}},
	}
	if !v.State.StartedAt.IsZero() {
		st.StartedAt = v.State.StartedAt.UnixNano()
	}
	if !v.State.FinishedAt.IsZero() {
		st.FinishedAt = v.State.FinishedAt.UnixNano()
	}
	if v.Resources != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: v.Resources}
	}
	st.StopSignal = criSignal(v.StopSignal)
	return st
}

// criSignal names a stop signal ("SIGUSR1", "USR1", "10"; "" for SIGTERM) in the CRI's enum;
// one the enum lacks is reported as SIGTERM, which stops the container at the end anyway.
func criSignal(s string) runtimeapi.Signal {
	if s == "" {
		return runtimeapi.Signal_SIGNAL_SIGTERM
	}
	sig, err := signal.ParseSignal(s)
	if err != nil {
		return runtimeapi.Signal_SIGNAL_SIGTERM
	}
	if v, ok := runtimeapi.Signal_value["SIGNAL_"+unix.SignalName(sig)]; ok {
		return runtimeapi.Signal(v)
	}
	return runtimeapi.Signal_SIGNAL_SIGTERM
}

func int64s(u []uint32) []int64 {
	out := make([]int64, len(u))
	for i, v := range u {
		out[i] = int64(v)
	}
	return out
}

func containerState(s string) runtimeapi.ContainerState {
	switch s {
	case runtime.ContainerCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case runtime.ContainerRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case runtime.ContainerExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// UpdateContainerResources applies new resources to a container.
func (s *RuntimeService) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	if req.GetLinux() == nil {
		return nil, invalid("linux: the resources to apply are missing")
	}
	if err := s.containers.UpdateContainerResources(ctx, req.GetContainerId(), req.GetLinux()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog reopens a running container's log file after rotation.
func (s *RuntimeService) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	if err := s.containers.ReopenContainerLog(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// ExecSync runs a command in a container and returns its output and exit code. A command that
// runs past the request's timeout is killed and the call fails with DeadlineExceeded, which the
// kubelet reads as a timed-out probe.
func (s *RuntimeService) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	if req.GetTimeout() < 0 {
		return nil, invalid("timeout: %d is negative", req.GetTimeout())
	}
	res, err := s.containers.ExecSync(ctx, req.GetContainerId(), req.GetCmd(), time.Duration(req.GetTimeout())*time.Second)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode}, nil
}
