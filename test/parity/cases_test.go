package parity

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/berth-runtime/berth/test/images"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const busybox = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"

// caseEnv is what a case's request may point at on this side: its own directory, and the
// directory every case shares (a shared mount, a seccomp profile).
type caseEnv struct {
	side        string
	dir, shared string
}

// testCase is one kubelet-shaped request: the BestEffort pod and container of kubeletPod and
// kubeletContainer, changed by pod and ctr.
type testCase struct {
	name  string
	image string // busybox when empty
	// pull are images the case needs pulled besides its own (an image volume's).
	pull []string
	pod  func(*runtimeapi.PodSandboxConfig, *caseEnv)
	ctr  func(*runtimeapi.ContainerConfig, *caseEnv)
	// check, when set, looks at the running container further; an error fails the side.
	check func(context.Context, *side, *outcome) error
}

func (c *testCase) imageRef() string {
	if c.image == "" {
		return busybox
	}
	return c.image
}

func sc(c *runtimeapi.ContainerConfig) *runtimeapi.LinuxContainerSecurityContext {
	return c.Linux.SecurityContext
}

func res(c *runtimeapi.ContainerConfig) *runtimeapi.LinuxContainerResources { return c.Linux.Resources }

func podNS(p *runtimeapi.PodSandboxConfig) *runtimeapi.NamespaceOption {
	return p.Linux.SecurityContext.NamespaceOptions
}

func i64(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }

// hostMount is a host-path mount of a directory of the case with the given propagation.
func hostMount(env *caseEnv, path string, prop runtimeapi.MountPropagation, ro bool) *runtimeapi.Mount {
	return &runtimeapi.Mount{ContainerPath: path, HostPath: filepath.Join(env.dir, "volume"), Readonly: ro, Propagation: prop}
}

// sharedMount is a host-path mount below the shared mount point the test made.
func sharedMount(env *caseEnv, path string, prop runtimeapi.MountPropagation) *runtimeapi.Mount {
	return &runtimeapi.Mount{ContainerPath: path, HostPath: filepath.Join(env.shared, "propagated", env.side), Propagation: prop}
}

var userns = &runtimeapi.UserNamespace{
	Mode: runtimeapi.NamespaceMode_POD,
	Uids: []*runtimeapi.IDMapping{{HostId: 65536 * 8, ContainerId: 0, Length: 65536}},
	Gids: []*runtimeapi.IDMapping{{HostId: 65536 * 8, ContainerId: 0, Length: 65536}},
}

// cases is the matrix: every security-context knob, every resource field, the namespaces, every
// mount kind, devices, the process from the image and from the request, each form of an image's
// USER, its volumes and stop signal, tty and stdin.
var cases = []testCase{
	{name: "besteffort", check: wantFields(map[string]string{
		// The table: what a workload saw under berth before, now as under containerd.
		"spec/process.rlimits[RLIMIT_NOFILE].soft":           "",             // no 1024 open files
		"spec/mounts[/run].type":                             "",             // no tmpfs over the image's /run
		"spec/mounts[/sys/fs/cgroup].type":                   `"cgroup"`,     // its cgroups...
		"spec/mounts[/sys/fs/cgroup].options":                `*"ro"*`,       // ...read-only
		"sysctl/sysctl[net.ipv4.ip_unprivileged_port_start]": "0",            // port 80 without root
		"sysctl/sysctl[net.ipv4.ping_group_range]":           "0 2147483647", // ping without CAP_NET_RAW
		"status/stop_signal":                                 fmt.Sprint(int32(runtimeapi.Signal_SIGNAL_SIGTERM)),
	})},
	{name: "guaranteed", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		r := res(c)
		r.CpuShares, r.CpuQuota, r.MemoryLimitInBytes, r.OomScoreAdj = 512, 50000, 128<<20, -997
	}},
	{name: "burstable", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		r := res(c)
		r.CpuShares, r.MemoryLimitInBytes, r.OomScoreAdj = 102, 256<<20, 968
	}},
	{name: "swap", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		r := res(c)
		r.MemoryLimitInBytes, r.MemorySwapLimitInBytes = 128<<20, 192<<20
	}},
	{name: "cpuset", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		res(c).CpusetCpus, res(c).CpusetMems = "0", "0"
	}},
	{name: "unified", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		res(c).Unified = map[string]string{"memory.high": "104857600"}
	}},
	{name: "hugepages", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		res(c).HugepageLimits = []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}, {PageSize: "1GB"}}
	}},
	{name: "no-resources", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { c.Linux.Resources = nil }},
	{name: "run-as-user", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { sc(c).RunAsUser = i64(1000) }},
	{name: "run-as-user-group", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).RunAsUser, sc(c).RunAsGroup = i64(1000), i64(3000)
	}},
	{name: "run-as-username", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { sc(c).RunAsUsername = "www-data" }},
	{name: "run-as-user-in-image", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { sc(c).RunAsUser = i64(33) }},
	{name: "supplemental-merge", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).RunAsUser, sc(c).SupplementalGroups = i64(8), []int64{4000, 4001}
	}},
	{name: "supplemental-strict", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).RunAsUser, sc(c).SupplementalGroups = i64(8), []int64{4000}
		sc(c).SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Strict
	}},
	{name: "fs-group", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).RunAsUser, sc(c).RunAsGroup, sc(c).SupplementalGroups = i64(1000), i64(3000), []int64{2000}
	}},
	{name: "privileged", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		p.Linux.SecurityContext.Privileged = true
	}, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Privileged, sc(c).MaskedPaths, sc(c).ReadonlyPaths = true, nil, nil
	}},
	{name: "readonly-rootfs", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { sc(c).ReadonlyRootfs = true }},
	{name: "no-new-privs", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { sc(c).NoNewPrivs = true }},
	{name: "caps-add", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN", "SYS_TIME"}}
	}},
	{name: "caps-drop", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"NET_RAW", "CHOWN"}}
	}},
	{name: "caps-drop-all", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
	}},
	{name: "caps-drop-all-add-one", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}
	}},
	{name: "caps-add-all", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"SYS_ADMIN"}}
	}},
	{name: "caps-nonroot", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).RunAsUser = i64(1000)
		sc(c).Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_BIND_SERVICE"}}
	}},
	{name: "seccomp-runtime-default", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}},
	{name: "seccomp-unset", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { sc(c).Seccomp = nil }},
	{name: "seccomp-localhost", ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		sc(c).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: filepath.Join(env.shared, "seccomp.json")}
	}},
	{name: "apparmor-runtime-default", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}},
	{name: "selinux-options", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).SelinuxOptions = &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2"}
	}},
	{name: "proc-mount-unmasked", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		podNS(p).UsernsOptions = userns
	}, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).MaskedPaths, sc(c).ReadonlyPaths = nil, nil
	}},
	{name: "masked-readonly-paths", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).MaskedPaths = append([]string{"/etc/shadow"}, kubeletMaskedPaths...)
		sc(c).ReadonlyPaths = append([]string{"/etc"}, kubeletReadonlyPaths...)
	}},
	{name: "host-network", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		// The kubelet sends no hostname and no DNS config for a host-network pod.
		podNS(p).Network = runtimeapi.NamespaceMode_NODE
		p.DnsConfig, p.Hostname = nil, ""
	}, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Mounts = c.Mounts[1:] // the kubelet mounts no hosts file in a host-network pod
	}},
	{name: "host-pid", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		podNS(p).Pid = runtimeapi.NamespaceMode_NODE
	}},
	{name: "host-ipc", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		podNS(p).Ipc = runtimeapi.NamespaceMode_NODE
	}},
	{name: "shared-pid", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		podNS(p).Pid = runtimeapi.NamespaceMode_POD
	}},
	{name: "user-namespace", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		podNS(p).UsernsOptions = userns
	}},
	{name: "pod-sysctls", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		p.Linux.Sysctls = map[string]string{"net.core.somaxconn": "1024", "kernel.shm_rmid_forced": "1"}
	}},
	{name: "pod-sysctls-override", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		p.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "net.ipv4.ping_group_range": "100 200"}
	}},
	{name: "mount-private-ro", ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		c.Mounts = append(c.Mounts, hostMount(env, "/data", runtimeapi.MountPropagation_PROPAGATION_PRIVATE, true))
	}},
	{name: "mount-private-rw", ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		c.Mounts = append(c.Mounts, hostMount(env, "/data", runtimeapi.MountPropagation_PROPAGATION_PRIVATE, false))
	}},
	{name: "mount-host-to-container", ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		c.Mounts = append(c.Mounts, sharedMount(env, "/data", runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER))
	}},
	{name: "mount-bidirectional", pod: func(p *runtimeapi.PodSandboxConfig, _ *caseEnv) {
		p.Linux.SecurityContext.Privileged = true
	}, ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		sc(c).Privileged, sc(c).MaskedPaths, sc(c).ReadonlyPaths = true, nil, nil
		c.Mounts = append(c.Mounts, sharedMount(env, "/data", runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL))
	}},
	{name: "mount-recursive-readonly", ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		m := hostMount(env, "/data", runtimeapi.MountPropagation_PROPAGATION_PRIVATE, true)
		m.RecursiveReadOnly = true
		c.Mounts = append(c.Mounts, m)
	}},
	{name: "mount-options", ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		m := hostMount(env, "/data", runtimeapi.MountPropagation_PROPAGATION_PRIVATE, false)
		m.MountOptions = []string{"noexec", "nodev", "nosuid"}
		c.Mounts = append(c.Mounts, m)
	}},
	{name: "mount-over-image-dir", ctr: func(c *runtimeapi.ContainerConfig, env *caseEnv) {
		c.Mounts = append(c.Mounts, hostMount(env, "/var/log", runtimeapi.MountPropagation_PROPAGATION_PRIVATE, false))
	}},
	{name: "image-volume", pull: []string{images.WhiteoutsRef}, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/image", Image: &runtimeapi.ImageSpec{Image: images.WhiteoutsRef}, Readonly: true})
	}},
	{name: "device", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/parity-null", Permissions: "rwm"}}
	}},
	{name: "device-readonly", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Devices = []*runtimeapi.Device{{HostPath: "/dev/zero", ContainerPath: "/dev/parity-zero", Permissions: "r"}}
	}},
	{name: "cdi-device", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.CDIDevices = []*runtimeapi.CDIDevice{{Name: "parity.example.com/device=null"}}
	}, check: wantCDIDevice},
	{name: "cdi-annotation", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Annotations["cdi.k8s.io/parity"] = "parity.example.com/device=null"
	}, check: wantCDIDevice},
	{name: "cdi-unknown-device", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.CDIDevices = []*runtimeapi.CDIDevice{{Name: "parity.example.com/device=absent"}}
	}},
	{name: "process-from-image", image: images.ParityProcess, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Command = nil
	}},
	{name: "args-from-request", image: images.ParityProcess, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Command, c.Args = nil, []string{"exec sleep 3601"}
	}},
	{name: "command-from-request", image: images.ParityProcess, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Command, c.Args = []string{"sleep"}, []string{"3602"}
	}},
	{name: "env-and-workdir-from-request", image: images.ParityProcess, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.Command = nil
		c.WorkingDir = "/tmp"
		c.Envs = append(c.Envs, &runtimeapi.KeyValue{Key: "OVERRIDDEN", Value: []byte("request")}, &runtimeapi.KeyValue{Key: "EMPTY", Value: []byte{}})
	}},
	{name: "image-user-name", image: images.ParityUserName},
	{name: "image-user-uid", image: images.ParityUserUID},
	{name: "image-user-uid-group", image: images.ParityUserUIDGroup},
	{name: "image-user-uid-gid", image: images.ParityUserUIDGID},
	{name: "image-user-overflow", image: images.ParityUserOverflow, check: func(context.Context, *side, *outcome) error {
		return errors.New("a container of an image whose USER does not fit a uid ran") // both must refuse
	}},
	{name: "image-user-negative", image: images.ParityUserNegative},
	{name: "image-user-overridden", image: images.ParityUserOverflow, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).RunAsUser = i64(1000)
	}},
	{name: "image-volumes", image: images.ParityVolumes, check: wantFields(map[string]string{
		"spec/mounts[/var/lib/data].type": `"bind"`, "spec/mounts[/scratch].type": `"bind"`,
	})},
	{name: "image-volumes-readonly-rootfs", image: images.ParityVolumes, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		sc(c).ReadonlyRootfs = true
	}},
	{name: "image-stop-signal", image: images.ParityStopSignal, check: wantFields(map[string]string{"status/stop_signal": fmt.Sprint(int32(runtimeapi.Signal_SIGNAL_SIGUSR1))})},
	{name: "request-stop-signal", image: images.ParityStopSignal, ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) {
		c.StopSignal = runtimeapi.Signal_SIGNAL_SIGTERM
	}},
	{name: "tty", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { c.Tty = true }},
	{name: "stdin", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { c.Stdin, c.StdinOnce = true, true }},
	{name: "run-as-user-out-of-range", ctr: func(c *runtimeapi.ContainerConfig, _ *caseEnv) { sc(c).RunAsUser = i64(1 << 31) }},
}

// wantCDIDevice checks that the CDI spec's edits reached the container.
var wantCDIDevice = wantFields(map[string]string{
	"spec/linux.devices[/dev/parity-cdi].type": `"c"`, "spec/process.env[PARITY_CDI]": `"null"`,
	"spec/process.env[PARITY_CDI_VENDOR]": `"parity"`, "spec/mounts[/etc/parity-cdi].source": `*cdi-file"`,
})

// wantFields checks fields of an outcome, keyed "<kind>/<field>" (kinds: spec, process, sysctl,
// status), before normalising: "" means absent; a value with * matches as a glob.
func wantFields(want map[string]string) func(context.Context, *side, *outcome) error {
	return func(_ context.Context, s *side, o *outcome) error {
		kinds := map[string]Fields{"spec": o.spec, "process": o.view, "sysctl": o.sysctl, "status": o.status}
		var errs []error
		for key, w := range want {
			kind, field, _ := strings.Cut(key, "/")
			got := kinds[kind][field]
			if ok := got == w || (strings.Contains(w, "*") && globRegexp(w).MatchString(got)); !ok {
				errs = append(errs, fmt.Errorf("%s: %s is %q, want %q", s.name, key, got, w))
			}
		}
		return errors.Join(errs...)
	}
}
