package cri

import (
	"context"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Checkpoints is what the RuntimeService needs from runtime/ to checkpoint containers and pods.
type Checkpoints interface {
	CheckpointContainer(ctx context.Context, id, location string, status *runtimeapi.ContainerStatus, timeout time.Duration) error
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
