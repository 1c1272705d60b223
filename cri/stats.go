package cri

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// Stats reads the resource usage of containers and pods.
type Stats interface {
	ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error)
	ListContainerStats(ctx context.Context) ([]*runtimeapi.ContainerStats, error)
	PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error)
	ListPodSandboxStats(ctx context.Context) ([]*runtimeapi.PodSandboxStats, error)
	ListPodSandboxMetrics(ctx context.Context) ([]runtime.PodMetrics, error)
}

// ContainerStats returns one container's resource usage.
func (s *RuntimeService) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	if req.GetContainerId() == "" {
		return nil, invalid("container_id: empty")
	}
	st, err := s.stats.ContainerStats(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats returns the resource usage of the containers the filter selects (by id or
// its prefix, pod and labels).
func (s *RuntimeService) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	stats, err := selectStats(ctx, f.GetId(), f.GetLabelSelector(), s.stats.ContainerStats,
		func(ctx context.Context) ([]*runtimeapi.ContainerStats, error) { return s.listContainerStats(ctx, f) },
		func(st *runtimeapi.ContainerStats) (string, map[string]string) {
			return st.GetAttributes().GetId(), st.GetAttributes().GetLabels()
		})
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: stats}, nil
}

// listContainerStats reads the stats of the pod's containers when the filter names a pod, else
// of all.
func (s *RuntimeService) listContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	if f.GetPodSandboxId() == "" {
		return s.stats.ListContainerStats(ctx)
	}
	views, err := s.containers.Containers(ctx)
	if err != nil {
		return nil, err
	}
	var out []*runtimeapi.ContainerStats
	for _, v := range views {
		if !strings.HasPrefix(v.SandboxID, f.GetPodSandboxId()) {
			continue
		}
		if st, err := s.stats.ContainerStats(ctx, v.ID); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// PodSandboxStats returns one pod's resource usage.
func (s *RuntimeService) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("pod_sandbox_id: empty")
	}
	st, err := s.stats.PodSandboxStats(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats returns the resource usage of the pods the filter selects (by id or its
// prefix, and labels).
func (s *RuntimeService) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	stats, err := selectStats(ctx, f.GetId(), f.GetLabelSelector(), s.stats.PodSandboxStats, s.stats.ListPodSandboxStats,
		func(st *runtimeapi.PodSandboxStats) (string, map[string]string) {
			return st.GetAttributes().GetId(), st.GetAttributes().GetLabels()
		})
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: stats}, nil
}

// selectStats reads the stats a list filter selects: of the one object a full id names (none
// when it is unknown: a filter that matches nothing), else of all; then keeps those whose id
// starts with id and whose labels match the selector.
func selectStats[T any](ctx context.Context, id string, selector map[string]string,
	one func(context.Context, string) (T, error), all func(context.Context) ([]T, error),
	attrs func(T) (string, map[string]string)) ([]T, error) {
	var candidates []T
	if id != "" && !isIDPrefix(id) {
		st, err := one(ctx, id)
		if err != nil {
			return nil, nil
		}
		candidates = []T{st}
	} else {
		var err error
		if candidates, err = all(ctx); err != nil {
			return nil, err
		}
	}
	var out []T
	for _, st := range candidates {
		if sid, labels := attrs(st); strings.HasPrefix(sid, id) && labelsMatch(labels, selector) {
			out = append(out, st)
		}
	}
	return out, nil
}

// isIDPrefix reports whether id is shorter than a full berth id (64 hex digits): a prefix to
// match rather than an id to look up.
func isIDPrefix(id string) bool { return len(id) < 64 }
