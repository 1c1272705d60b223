package cri

import (
	"context"
	"encoding/json"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// Pods is what the RuntimeService needs from runtime/ for pod sandboxes.
type Pods interface {
	RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error)
	StopPodSandbox(ctx context.Context, id string) error
	RemovePodSandbox(ctx context.Context, id string) error
	PodSandbox(ctx context.Context, id string) (runtime.SandboxView, error)
	PodSandboxes(ctx context.Context) ([]runtime.SandboxView, error)
	Handlers() []string
	HandlerFeatures(handler string) runtime.Features
	UpdatePodSandboxResources(ctx context.Context, id string, overhead, resources *runtimeapi.LinuxContainerResources) error
}

// RunPodSandbox creates and starts a pod sandbox.
func (s *RuntimeService) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	id, err := s.pods.RunPodSandbox(ctx, req.GetConfig(), req.GetRuntimeHandler())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// StopPodSandbox stops a pod sandbox. Per the CRI (api.proto) it is idempotent and a sandbox that
// does not exist is not an error.
func (s *RuntimeService) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("pod_sandbox_id: empty")
	}
	if err := s.pods.StopPodSandbox(ctx, req.GetPodSandboxId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes a pod sandbox. Per the CRI (api.proto) it is idempotent and a sandbox
// that does not exist is not an error.
func (s *RuntimeService) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("pod_sandbox_id: empty")
	}
	if err := s.pods.RemovePodSandbox(ctx, req.GetPodSandboxId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus describes a pod sandbox; an unknown id is NotFound.
func (s *RuntimeService) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("pod_sandbox_id: empty")
	}
	v, err := s.pods.PodSandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: sandboxStatus(v)}
	if req.GetVerbose() {
		info := map[string]any{"netns": v.NetNS, "runtimeHandler": v.RuntimeHandler, "config": v.Config}
		if v.InfraPid != 0 {
			info["pid"] = v.InfraPid
		}
		if v.Network != nil {
			info["network"] = v.Network.Network
			info["cniResult"] = v.Network.Result
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

func sandboxStatus(v runtime.SandboxView) *runtimeapi.PodSandboxStatus {
	st := &runtimeapi.PodSandboxStatus{
		Id:             v.ID,
		Metadata:       v.Config.GetMetadata(),
		State:          sandboxState(v.State),
		CreatedAt:      v.CreatedAt.UnixNano(),
		Labels:         v.Config.GetLabels(),
		Annotations:    v.Config.GetAnnotations(),
		RuntimeHandler: v.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: v.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if v.Network != nil && len(v.Network.IPs) > 0 {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: v.Network.IPs[0]}
		for _, ip := range v.Network.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}

func sandboxState(s string) runtimeapi.PodSandboxState {
	if s == runtime.SandboxReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// ListPodSandbox lists pod sandboxes matching the filter: id (or a prefix of it), state and
// labels (every label of the selector must match).
func (s *RuntimeService) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	all, err := s.pods.PodSandboxes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, v := range all {
		if f.GetId() != "" && !strings.HasPrefix(v.ID, f.GetId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != sandboxState(v.State) {
			continue
		}
		if !labelsMatch(v.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{
			Id: v.ID, Metadata: v.Config.GetMetadata(), State: sandboxState(v.State), CreatedAt: v.CreatedAt.UnixNano(),
			Labels: v.Config.GetLabels(), Annotations: v.Config.GetAnnotations(), RuntimeHandler: v.RuntimeHandler,
		})
	}
	return resp, nil
}

// labelsMatch reports whether labels hold every key and value of selector.
func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// UpdatePodSandboxResources takes the pod-level resources of an in-place pod resize, which the
// kubelet sends after it resized the pod's cgroup. Best effort, as api.proto says; an unknown pod
// is NotFound.
func (s *RuntimeService) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("pod_sandbox_id: empty")
	}
	if err := s.pods.UpdatePodSandboxResources(ctx, req.GetPodSandboxId(), req.GetOverhead(), req.GetResources()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
