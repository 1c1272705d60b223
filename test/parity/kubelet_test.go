package parity

import (
	"os"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's default masked and read-only paths (k8s.io/kubernetes/pkg/securitycontext): what
// it sends for every container with procMount Default.
var (
	kubeletMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	kubeletReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// kubeletPod is the sandbox config the kubelet sends for a BestEffort pod named name with its own
// network, IPC and UTS namespaces and a PID namespace per container.
func kubeletPod(name string, s *side, dir string) *runtimeapi.PodSandboxConfig {
	uid := "0f0c5a8e-" + name
	logDir := filepath.Join(dir, "logs")
	os.MkdirAll(logDir, 0o755)
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "parity", Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{"parity.svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5"},
		},
		Labels: map[string]string{
			"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "parity", "io.kubernetes.pod.uid": uid,
		},
		Annotations: map[string]string{"kubernetes.io/config.seen": "2026-12-02T00:00:00Z", "kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: s.cgroupParent + "/pod" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
				},
				Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
		},
	}
}

// kubeletContainer is the container config the kubelet sends for a BestEffort container: the
// service environment, its labels and annotations, the termination-log and /etc/hosts mounts
// (the kubelet writes the pod's hosts file itself), the default masked and read-only paths,
// the Unconfined seccomp profile (SeccompDefault off) and the BestEffort resources.
func kubeletContainer(name, image, dir string, pod *runtimeapi.PodSandboxConfig) *runtimeapi.ContainerConfig {
	termLog := filepath.Join(dir, "termination-log")
	os.WriteFile(termLog, nil, 0o666)
	hosts := filepath.Join(dir, "etc-hosts")
	os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\t"+name+"\n"), 0o644)
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: image},
		Command:  []string{"sleep", "3600"},
		Envs: []*runtimeapi.KeyValue{
			{Key: "KUBERNETES_SERVICE_HOST", Value: []byte("10.96.0.1")}, {Key: "KUBERNETES_SERVICE_PORT", Value: []byte("443")},
			{Key: "KUBERNETES_PORT", Value: []byte("tcp://10.96.0.1:443")},
		},
		Labels: map[string]string{
			"io.kubernetes.container.name": "c", "io.kubernetes.pod.name": name,
			"io.kubernetes.pod.namespace": "parity", "io.kubernetes.pod.uid": pod.Metadata.Uid,
		},
		Annotations: map[string]string{
			"io.kubernetes.container.hash": "1a2b3c4d", "io.kubernetes.container.restartCount": "0",
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
		},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/etc/hosts", HostPath: hosts},
			{ContainerPath: "/dev/termination-log", HostPath: termLog},
		},
		LogPath: "c/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{
				CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000,
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB"}, {PageSize: "1GB"}},
			},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: pod.Linux.SecurityContext.NamespaceOptions,
				MaskedPaths:      kubeletMaskedPaths,
				ReadonlyPaths:    kubeletReadonlyPaths,
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
		},
	}
}
