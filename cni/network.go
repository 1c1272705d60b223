package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ifName is the pod's interface, as every CRI runtime names it.
const ifName = "eth0"

// PortMapping is a host port forwarded into the pod.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Pod is what CNI needs to know about a pod to wire it.
type Pod struct {
	// ID is the sandbox id, CNI's container id.
	ID string
	// NetNS is the path of the pod's pinned network namespace.
	NetNS                string
	Name, Namespace, UID string
	PortMappings         []PortMapping
	// Annotations carry the bandwidth limits (kubernetes.io/ingress-bandwidth, egress-bandwidth).
	Annotations map[string]string
	// DNS is passed to plugins that want it (capability "dns").
	DNS *DNS
}

// DNS is the pod's DNS configuration as CNI's dns capability carries it.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Attachment is what ADD gave a pod: its addresses, the network it is on and the raw result.
type Attachment struct {
	Network string   `json:"network"`
	IPs     []string `json:"ips"`
	// Result is the CNI result as the plugins returned it (shown by a verbose PodSandboxStatus).
	Result json.RawMessage `json:"result,omitempty"`
}

// Network runs the CNI plugins of the configured network for pods.
type Network struct {
	config *Config
	cni    *libcni.CNIConfig
	// Metrics, when set, records each ADD and DEL.
	Metrics *Metrics
}

// NewNetwork returns a Network over config, caching results in cacheDir (so that teardown works
// after a restart or a config change).
func NewNetwork(config *Config, cacheDir string) *Network {
	return &Network{config: config, cni: libcni.NewCNIConfigWithCacheDir(config.binDirs, cacheDir, nil)}
}

func runtimeConf(pod *Pod) (*libcni.RuntimeConf, error) {
	rt := &libcni.RuntimeConf{
		ContainerID: pod.ID,
		NetNS:       pod.NetNS,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ID},
			{"K8S_POD_UID", pod.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	var ports []PortMapping
	for _, p := range pod.PortMappings {
		if p.HostPort > 0 {
			ports = append(ports, p)
		}
	}
	if len(ports) > 0 {
		rt.CapabilityArgs["portMappings"] = ports
	}
	bw, err := bandwidth(pod.Annotations)
	if err != nil {
		return nil, err
	}
	if bw != nil {
		rt.CapabilityArgs["bandwidth"] = bw
	}
	if pod.DNS != nil {
		rt.CapabilityArgs["dns"] = pod.DNS
	}
	return rt, nil
}

// Setup runs ADD for pod. A failed ADD is rolled back with DEL before the error is returned.
func (n *Network) Setup(ctx context.Context, pod *Pod) (*Attachment, error) {
	list, _, err := n.config.Network()
	if err != nil {
		return nil, fmt.Errorf("pod network is not ready: %v: %w", err, errdefs.ErrFailedPrecondition)
	}
	rt, err := runtimeConf(pod)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := n.cni.AddNetworkList(ctx, list, rt)
	n.Metrics.observe("add", start, err)
	if err != nil {
		// Undo what the plugins that succeeded did (IP reservations, veths, port mappings).
		delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := n.cni.DelNetworkList(delCtx, list, rt); derr != nil {
			err = fmt.Errorf("%w (and rolling back failed: %v)", err, derr)
		}
		return nil, fmt.Errorf("CNI network %q ADD for pod %s/%s: %w", list.Name, pod.Namespace, pod.Name, err)
	}
	return attachment(list.Name, res)
}

// Teardown runs DEL for pod on the network it was set up on, from libcni's cache when that
// network's config is gone or changed. It is idempotent: DEL of a pod that is not wired succeeds.
func (n *Network) Teardown(ctx context.Context, pod *Pod, network string) error {
	rt, err := runtimeConf(pod)
	if err != nil {
		return err
	}
	list, _, err := n.config.Network()
	if err != nil || (network != "" && list.Name != network) {
		// Not the network the pod was set up on: use the config cached at ADD.
		cached, _, cerr := n.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: network}, rt)
		if cerr != nil || cached == nil {
			// libcni drops its cache only after a successful DEL: with none, the pod was never
			// wired on that network or is unwired already. Nothing is left to undo.
			return nil
		}
		if list, err = libcni.NetworkConfFromBytes(cached); err != nil {
			return fmt.Errorf("cached CNI config of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	start := time.Now()
	err = n.cni.DelNetworkList(ctx, list, rt)
	n.Metrics.observe("del", start, err)
	if err != nil {
		return fmt.Errorf("CNI network %q DEL for pod %s/%s: %w", list.Name, pod.Namespace, pod.Name, err)
	}
	return nil
}

// attachment reads the pod's addresses from an ADD result: those of its interface in the
// sandbox, IPv4 first.
func attachment(network string, res types.Result) (*Attachment, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result: %w", err)
	}
	raw, _ := json.Marshal(r)
	a := &Attachment{Network: network, Result: raw}
	var v4, v6 []string
	for _, ip := range r.IPs {
		if ip.Interface != nil && *ip.Interface < len(r.Interfaces) && r.Interfaces[*ip.Interface].Sandbox == "" {
			continue // an address of a host-side interface
		}
		if ip.Address.IP.To4() != nil {
			v4 = append(v4, ip.Address.IP.String())
		} else {
			v6 = append(v6, ip.Address.IP.String())
		}
	}
	a.IPs = append(v4, v6...)
	if len(a.IPs) == 0 {
		return nil, errors.New("CNI result has no address for the pod")
	}
	return a, nil
}

// bandwidthLimits is CNI's bandwidth capability, in bits per second and bits.
type bandwidthLimits struct {
	IngressRate  int64 `json:"ingressRate,omitempty"`
	IngressBurst int64 `json:"ingressBurst,omitempty"`
	EgressRate   int64 `json:"egressRate,omitempty"`
	EgressBurst  int64 `json:"egressBurst,omitempty"`
}

// Annotations that limit a pod's bandwidth, as the kubelet's network plugins read them.
const (
	ingressBandwidth = "kubernetes.io/ingress-bandwidth"
	egressBandwidth  = "kubernetes.io/egress-bandwidth"
)

// unlimitedBurst is the burst the kubelet's own bandwidth shaping uses: as good as unlimited.
const unlimitedBurst = 1<<31 - 1

func bandwidth(annotations map[string]string) (*bandwidthLimits, error) {
	var bw bandwidthLimits
	for _, a := range []struct {
		key   string
		rate  *int64
		burst *int64
	}{{ingressBandwidth, &bw.IngressRate, &bw.IngressBurst}, {egressBandwidth, &bw.EgressRate, &bw.EgressBurst}} {
		v, ok := annotations[a.key]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || q.Value() <= 0 {
			return nil, fmt.Errorf("annotation %s=%q is not a positive bandwidth such as 10M: %w", a.key, v, errdefs.ErrInvalidArgument)
		}
		*a.rate, *a.burst = q.Value(), unlimitedBurst
	}
	if bw == (bandwidthLimits{}) {
		return nil, nil
	}
	return &bw, nil
}
