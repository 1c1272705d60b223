package cri

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/version"
)

// apiVersion is the CRI API version berth implements, as the kubelet expects it in Version.
const apiVersion = "v1"

// Engine is what the RuntimeService needs to know about containerd.
type Engine interface {
	// Ready reports nil when containerd answers, else why not.
	Ready(ctx context.Context) error
	// EngineVersion returns containerd's version.
	EngineVersion(ctx context.Context) (string, error)
}

// NetworkStatus reports whether pods can get a network.
type NetworkStatus interface {
	Ready() (ready bool, reason, message string)
}

// RuntimeOptions are the facts about the daemon that the RuntimeService reports.
type RuntimeOptions struct {
	// CgroupDriver is the driver in use: "cgroupfs" or "systemd".
	CgroupDriver string
	// Config is the daemon's effective configuration, shown by a verbose Status.
	Config any
	// PodCIDRs keeps the pod CIDRs UpdateRuntimeConfig brings; nil ignores them.
	PodCIDRs PodCIDRs
	// Checkpoints checkpoints and restores containers and pods; nil: those RPCs answer
	// Unimplemented.
	Checkpoints Checkpoints
}

// PodCIDRs keeps the node's pod CIDRs (and renders the CNI config template with them).
type PodCIDRs interface {
	Update(podCIDR string) error
	Get() []string
}

// RuntimeService implements the CRI RuntimeService. RPCs whose capability has not landed yet are
// answered by the embedded UnimplementedRuntimeServiceServer with codes.Unimplemented, naming the
// method.
type RuntimeService struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	engine      Engine
	network     NetworkStatus
	pods        Pods
	containers  Containers
	streams     Streams
	stats       Stats
	events      Events
	checkpoints Checkpoints
	opts        RuntimeOptions
}

// NewRuntimeService returns the RuntimeService over engine, network, pods, containers, their
// stats and events, and the streaming server.
func NewRuntimeService(engine Engine, network NetworkStatus, pods Pods, containers Containers, stats Stats, events Events, streams Streams, opts RuntimeOptions) *RuntimeService {
	return &RuntimeService{engine: engine, network: network, pods: pods, containers: containers, stats: stats, events: events, streams: streams,
		checkpoints: opts.Checkpoints, opts: opts}
}

// Version returns the runtime's name and versions. The request's version field is the kubelet's
// CRI version and needs no check: berth serves v1 only and the gRPC service name already pins it.
func (s *RuntimeService) Version(ctx context.Context, _ *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0", // the version of the kubelet runtime API, fixed by CRI.
		RuntimeName:       version.Name,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: apiVersion,
	}, nil
}

// Status reports the RuntimeReady and NetworkReady conditions. It never fails because containerd
// or the network is down: that is what the conditions are for.
func (s *RuntimeService) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	if err := s.engine.Ready(ctx); err != nil {
		runtimeCond.Status = false
		runtimeCond.Reason = "ContainerdNotReady"
		runtimeCond.Message = err.Error()
	}
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady}
	netCond.Status, netCond.Reason, netCond.Message = s.network.Ready()

	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{runtimeCond, netCond}},
	}
	// The default handler is listed twice, as containerd lists it: by its name and as "", the
	// name a pod that asks for no handler uses (and so the one the kubelet and critest look up).
	for _, h := range append([]string{""}, s.pods.Handlers()...) {
		f := s.pods.HandlerFeatures(h)
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{
			Name: h, Features: &runtimeapi.RuntimeHandlerFeatures{
				RecursiveReadOnlyMounts: f.RecursiveReadOnlyMounts,
				UserNamespaces:          f.UserNamespaces,
			},
		})
	}
	// Merge and Strict are both applied, and ContainerStatus reports the user a container runs as;
	// mounts take the bind mount options noexec, nodev and nosuid.
	resp.Features = &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true, MountOptions: true}
	if req.GetVerbose() {
		resp.Info = s.verboseInfo(ctx)
	}
	return resp, nil
}

// verboseInfo is the `info` map of a verbose Status: each value is a JSON document, as crictl info
// expects.
func (s *RuntimeService) verboseInfo(ctx context.Context) map[string]string {
	info := map[string]string{}
	if b, err := json.Marshal(s.opts.Config); err == nil {
		info["config"] = string(b)
	}
	versions := map[string]string{"berth": version.Version, "criApi": apiVersion}
	if v, err := s.engine.EngineVersion(ctx); err == nil {
		versions["containerd"] = v
	} else {
		versions["containerd"] = "unknown: " + err.Error()
	}
	b, _ := json.Marshal(versions)
	info["versions"] = string(b)
	if s.opts.PodCIDRs != nil {
		b, _ := json.Marshal(s.opts.PodCIDRs.Get())
		info["podCIDRs"] = string(b)
	}
	return info
}

// UpdateRuntimeConfig takes the node's pod CIDR(s), which the kubelet sends once the node has
// them: berth records them and, with a CNI config template (cni-conf-template), renders the
// pods' network configuration from them; pods created from then on use it.
func (s *RuntimeService) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	if s.opts.PodCIDRs != nil {
		if err := s.opts.PodCIDRs.Update(req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()); err != nil {
			return nil, toStatus(err)
		}
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// RuntimeConfig reports the cgroup driver, which the kubelet must match.
func (s *RuntimeService) RuntimeConfig(ctx context.Context, _ *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.opts.CgroupDriver == "systemd" {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}
