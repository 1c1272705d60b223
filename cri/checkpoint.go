package cri

import (
	"context"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// Checkpoints is what the RuntimeService needs from runtime/ to checkpoint containers and pods.
type Checkpoints interface {
	CheckpointContainer(ctx context.Context, id, location string, status *runtimeapi.ContainerStatus, timeout time.Duration) error
	CheckpointPod(ctx context.Context, podID, output string, ids []string, statuses map[string]*runtimeapi.ContainerStatus, options map[string]string) error
	RestorePod(ctx context.Context, dir string, cfg *runtimeapi.PodSandboxConfig, handler string, options map[string]string,
		configs []*runtimeapi.ContainerConfig) (string, []runtime.RestoredContainer, error)
}

// CheckpointContainer writes a checkpoint archive of a running container to the request's
// location, which the kubelet makes under /var/lib/kubelet/checkpoints; the container keeps
// running. A timeout of 0 is the runtime's default: berth's is none beyond the call's deadline.
func (s *RuntimeService) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	switch {
	case req.GetContainerId() == "":
		return nil, invalid("container_id: empty")
	case req.GetLocation() == "":
		return nil, invalid("location: empty")
	case !filepath.IsAbs(req.GetLocation()):
		return nil, invalid("location: %q is not an absolute path", req.GetLocation())
	case req.GetTimeout() < 0:
		return nil, invalid("timeout: %d is negative", req.GetTimeout())
	}
	if s.checkpoints == nil {
		return s.UnimplementedRuntimeServiceServer.CheckpointContainer(ctx, req)
	}
	v, err := s.containers.Container(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.checkpoints.CheckpointContainer(ctx, v.ID, req.GetLocation(), containerStatus(v), time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.CheckpointContainerResponse{}, nil
}

// CheckpointPod checkpoints the selected running containers of a pod together (frozen as one,
// thawed before it returns) into the request's output_path, an existing empty directory the
// caller owns; the layout is berth's (see package checkpoint), and RestorePod reads it.
func (s *RuntimeService) CheckpointPod(ctx context.Context, req *runtimeapi.CheckpointPodRequest) (*runtimeapi.CheckpointPodResponse, error) {
	if s.checkpoints == nil {
		return s.UnimplementedRuntimeServiceServer.CheckpointPod(ctx, req)
	}
	switch {
	case req.GetPodSandboxId() == "":
		return nil, invalid("pod_sandbox_id: empty")
	case req.GetOutputPath() == "":
		return nil, invalid("output_path: empty")
	case len(req.GetContainerIds()) == 0:
		return nil, invalid("container_ids: empty")
	}
	statuses := map[string]*runtimeapi.ContainerStatus{}
	for _, id := range req.GetContainerIds() {
		v, err := s.containers.Container(ctx, id)
		if err != nil {
			return nil, toStatus(err)
		}
		statuses[id] = containerStatus(v)
	}
	if err := s.checkpoints.CheckpointPod(ctx, req.GetPodSandboxId(), req.GetOutputPath(), req.GetContainerIds(), statuses, req.GetOptions()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.CheckpointPodResponse{}, nil
}

// RestorePod makes a pod from the request's config and, in it, the checkpointed containers from
// their configs, created and not started: StartContainer restores each.
func (s *RuntimeService) RestorePod(ctx context.Context, req *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	if s.checkpoints == nil {
		return s.UnimplementedRuntimeServiceServer.RestorePod(ctx, req)
	}
	switch {
	case req.GetCheckpointPath() == "":
		return nil, invalid("checkpoint_path: empty")
	case req.GetConfig() == nil:
		return nil, invalid("config: missing")
	case len(req.GetContainerConfigs()) == 0:
		return nil, invalid("container_configs: empty")
	}
	id, restored, err := s.checkpoints.RestorePod(ctx, req.GetCheckpointPath(), req.GetConfig(), req.GetRuntimeHandler(), req.GetOptions(), req.GetContainerConfigs())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.RestorePodResponse{PodSandboxId: id}
	for _, c := range restored {
		resp.RestoredContainers = append(resp.RestoredContainers, &runtimeapi.RestoredContainer{Name: c.Name, ContainerId: c.ID})
	}
	return resp, nil
}
