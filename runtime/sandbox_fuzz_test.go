package runtime

import (
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzSandboxConfig feeds arbitrary pod configs (as the kubelet's protobuf) to what RunPodSandbox
// does before it touches the node: validation, the hostname, resolv.conf and hosts rendering.
// None may panic. Run longer with `make fuzz`.
func FuzzSandboxConfig(f *testing.F) {
	for _, c := range []*runtimeapi.PodSandboxConfig{
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"}},
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u", Attempt: 3}, Hostname: "h",
			DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"a.svc"}, Options: []string{"ndots:5"}},
			Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/pod1", Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_POD,
					UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
						Uids: []*runtimeapi.IDMapping{{HostId: 1000, Length: 65536}}, Gids: []*runtimeapi.IDMapping{{HostId: 1000, Length: 65536}}}}}}},
	} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg runtimeapi.PodSandboxConfig
		if err := proto.Unmarshal(data, &cfg); err != nil {
			return
		}
		if err := validateSandboxConfig(&cfg, true); err != nil {
			return
		}
		h := podHostname(&cfg)
		if _, err := resolvConf(cfg.GetDnsConfig()); err != nil {
			return
		}
		hostsContent(false, h, "10.0.0.1")
		sharesPID(&cfg)
		hostIPC(&cfg)
	})
}
