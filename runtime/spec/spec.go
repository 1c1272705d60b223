// Package spec turns a CRI container config into an OCI runtime spec: a pure function of the
// config, the pod it runs in, its image and the runtime's settings, built from containerd's oci
// spec options and berth's own of the same shape.
package spec

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"sort"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// GroupAnnotation makes the runc shim run all tasks of a pod in one shim process.
const GroupAnnotation = "io.containerd.runc.v2.group"

// Sandbox is what a container takes from its pod.
type Sandbox struct {
	ID     string
	Config *runtimeapi.PodSandboxConfig
	// NetNS, IPC and UTS are the pod's pinned namespaces; empty means the node's.
	NetNS, IPC, UTS string
	// InfraPid is the pod's infra process, whose PID namespace containers share when the pod
	// says so.
	InfraPid uint32
	// Dir holds the pod's resolv.conf, hosts and hostname files.
	Dir string
	// Shm is the tmpfs the pod's containers share as /dev/shm; empty when the pod uses the
	// node's IPC namespace (and so the node's /dev/shm).
	Shm string
	// Hostname is the pod's hostname.
	Hostname string
	// Userns is the pod's pinned user namespace, empty when the pod runs in the node's; its
	// containers join it with the pod's UIDMappings and GIDMappings.
	Userns                   string
	UIDMappings, GIDMappings []specs.LinuxIDMapping
}

// Settings are the runtime's own facts that shape every spec.
type Settings struct {
	// CgroupDriver is "cgroupfs" or "systemd".
	CgroupDriver string
	// Capabilities are those berthd holds (its bounding set), the most a container can get:
	// "ALL" and privileged mean these.
	Capabilities []string
	// MinOOMScoreAdj is berthd's own oom_score_adj; a container cannot go lower, since lowering
	// it needs CAP_SYS_RESOURCE (as containerd's restrict_oom_score_adj does).
	MinOOMScoreAdj int
	// SeccompProfileRoot is where relative Localhost seccomp profiles are found.
	SeccompProfileRoot string
	// AppArmorEnabled says whether the node runs AppArmor.
	AppArmorEnabled bool
	// CgroupV2 says whether the node's cgroups are unified (v2 only).
	CgroupV2 bool
	// Host answers questions about the node's paths; nil means this node's.
	Host HostPaths
	// Cgroups says which cgroup controllers the node has; nil means this node's.
	Cgroups CgroupControllers
	// TolerateMissingHugetlb leaves hugepage limits out of a spec when the node has no hugetlb
	// controller, rather than failing (containerd's tolerate_missing_hugetlb_controller).
	TolerateMissingHugetlb bool
	// Ulimits are the rlimits every container's process gets (the default-ulimits key); none
	// means the process inherits the runtime's own, as under containerd's CRI.
	Ulimits []specs.POSIXRlimit
	// CgroupMountOptions are the node's cgroup2 mount options that a container sharing the
	// node's cgroup namespace must keep on its own cgroup mount (nsdelegate,
	// memory_recursiveprot): that mount shares the node's superblock.
	CgroupMountOptions []string
	// CDI resolves CDI devices; nil when the node has CDI off (a container asking for one fails).
	CDI CDIRegistry
}

// Input is everything a container's spec is made from.
type Input struct {
	ID       string
	Config   *runtimeapi.ContainerConfig
	Sandbox  Sandbox
	Image    ocispec.ImageConfig
	Settings Settings
	// Passwd and Group are the image's /etc/passwd and /etc/group (empty when it has none).
	Passwd, Group []byte
	// TargetPid is the process whose PID namespace a container with NamespaceMode TARGET joins.
	TargetPid uint32
	// ImageDefinedVolumes are the directories made for the image's VOLUMEs, by container path.
	ImageDefinedVolumes map[string]string
	// ImageName is the name of the image the container is made from, as the node knows it.
	ImageName string
	// ImageVolumes are the host paths of the config's image mounts (Mount.image), by their index
	// in its mounts: the image, or its image_sub_path, mounted read-only for the pod.
	ImageVolumes map[int]string
	// Annotations are the pod's and the container's annotations that the runtime handler lets
	// into the spec (its allowlist); berth's own annotations win over them.
	Annotations map[string]string
}

// Result is the spec and what the runtime must know about it.
type Result struct {
	Spec *specs.Spec
	// User is the identity the container's process runs as, for ContainerStatus.
	UID, GID uint32
	Groups   []uint32
	// HugepageLimitsDropped says the config's hugepage limits were left out: the node has no
	// hugetlb controller for the container (see Settings.TolerateMissingHugetlb).
	HugepageLimitsDropped bool
}

// Generate makes the OCI spec of a container. Errors in the config are errdefs.ErrInvalidArgument
// and name the field.
func Generate(in Input) (*Result, error) {
	if in.Config == nil {
		return nil, fmt.Errorf("config: missing: %w", errdefs.ErrInvalidArgument)
	}
	sc := in.Config.GetLinux().GetSecurityContext()
	user, err := resolveUser(in)
	if err != nil {
		return nil, err
	}
	var droppedHugepages bool
	opts := []oci.SpecOpts{
		oci.WithDefaultSpec(),
		// No tmpfs over the image's /run: an image that ships files there keeps them.
		oci.WithoutRunMount,
		withProcess(in),
		withUser(user),
		withNamespaces(in),
		withPodFiles(in),
		withShm(in),
		withDevices(in),
		withCgroupsPath(in),
		withResources(in, &droppedHugepages),
		withCgroupView(in),
		withSecurity(in),
		oci.WithAnnotations(annotations(in)),
	}
	if sc.GetReadonlyRootfs() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	// Mounts last: they may override the pod files and need the rootfs propagation settled.
	opts = append(opts, withImageDefinedVolumes(in), withMounts(in), withCDIDevices(in))

	s, err := oci.GenerateSpec(namespaces.WithNamespace(context.Background(), "berth"), nil, &containers.Container{ID: in.ID}, opts...)
	if err != nil {
		return nil, err
	}
	s.Root.Path = "rootfs"
	sortMounts(s.Mounts)
	return &Result{Spec: s, UID: user.uid, GID: user.gid, Groups: user.groups, HugepageLimitsDropped: droppedHugepages}, nil
}

// The annotations containerd's CRI puts in every container's spec, which OCI hooks, runtimes such
// as gVisor's and Kata's, and node agents read to know a container's pod.
const (
	annotationContainerType    = "io.kubernetes.cri.container-type"
	annotationContainerName    = "io.kubernetes.cri.container-name"
	annotationImageName        = "io.kubernetes.cri.image-name"
	annotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	annotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	annotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	annotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
)

// annotations are the spec's annotations: berth's shim grouping and the CRI ones, over those of
// the pod's and the container's annotations the handler's allowlist passed (in.Annotations).
// No other annotation of the config reaches the spec: runc and its hooks act on some
// (org.systemd.property.*, org.criu.config), and a pod must not steer them.
func annotations(in Input) map[string]string {
	md := in.Sandbox.Config.GetMetadata()
	out := maps.Clone(in.Annotations)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, map[string]string{
		GroupAnnotation:            in.Sandbox.ID,
		annotationContainerType:    "container",
		annotationContainerName:    in.Config.GetMetadata().GetName(),
		annotationImageName:        in.ImageName,
		annotationSandboxID:        in.Sandbox.ID,
		annotationSandboxName:      md.GetName(),
		annotationSandboxNamespace: md.GetNamespace(),
		annotationSandboxUID:       md.GetUid(),
	})
	return out
}

// sortMounts orders mounts so that a mount never comes before the one it is nested in, keeping
// the given order otherwise.
func sortMounts(m []specs.Mount) {
	sort.SliceStable(m, func(i, j int) bool {
		return depth(m[i].Destination) < depth(m[j].Destination)
	})
}

func depth(p string) int {
	p = filepath.Clean(p)
	if p == "/" {
		return 0
	}
	n := 0
	for _, c := range p {
		if c == '/' {
			n++
		}
	}
	return n
}
