package e2e

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod configs that tried the peers' advisories: each is refused with InvalidArgument, and the
// node's files and sysctls are as they were, with no pod left.
//   - CRI-O's GHSA-6x2m-w449-qwx7: a sysctl value that smuggles a second sysctl
//     ("1+kernel.core_pattern=...", which CRI-O's pinns split on '+').
//   - CRI-O's GHSA-w2j5-3rcx-vx7x and CVE-2022-0532: sysctls of a namespace the pod shares with
//     the node (host network, host IPC), and sysctls of no namespace.
//   - CVE-2022-4318 (CRI-O): newlines in values berth writes into files (the pod's hostname in
//     /etc/hosts, its DNS servers, searches and options in /etc/resolv.conf), adding lines of
//     the pod's choosing.
//   - CVE-2025-0750 (CRI-O): host paths made from pod metadata.
func TestAdvisoryHostilePodConfigs(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	corePattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	forwarding, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/forwarding")
	shmmni, _ := os.ReadFile("/proc/sys/kernel/shmmni")
	hosts, _ := os.ReadFile("/etc/hosts")
	hostNet := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
	hostIPC := &runtimeapi.NamespaceOption{Ipc: runtimeapi.NamespaceMode_NODE}
	tests := []struct {
		desc   string
		mutate func(*runtimeapi.PodSandboxConfig)
		field  string // the error names it
	}{
		{desc: "a sysctl value smuggling another", field: "kernel.shm_rmid_forced", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1+kernel.core_pattern=|/tmp/berth-advisory-core"}
		}},
		{desc: "a sysctl value with a newline", field: "net.ipv4.ip_unprivileged_port_start", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0\nkernel.core_pattern=|/tmp/berth-advisory-core"}
		}},
		{desc: "a sysctl of no namespace", field: "kernel.core_pattern", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.core_pattern": "|/tmp/berth-advisory-core"}
		}},
		{desc: "a sysctl name that climbs out of /proc/sys/net", field: "core_pattern", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net.ipv4/../../kernel/core_pattern": "|/tmp/berth-advisory-core"}
		}},
		{desc: "a network sysctl on the host network", field: "net.ipv4.conf.all.forwarding", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions = hostNet
			c.Linux.Sysctls = map[string]string{"net.ipv4.conf.all.forwarding": "0"}
		}},
		{desc: "an IPC sysctl on the host IPC namespace", field: "kernel.shmmni", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions = hostIPC
			c.Linux.Sysctls = map[string]string{"kernel.shmmni": "4242"}
		}},
		{desc: "a hostname with a newline", field: "hostname", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Hostname = "web\n10.0.0.66\tkubernetes.default.svc"
		}},
		{desc: "a DNS server with a newline", field: "dns_config", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10\nnameserver 10.0.0.66"}}
		}},
		{desc: "a DNS search with a newline", field: "dns_config", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Searches: []string{"svc.cluster.local\nnameserver 10.0.0.66"}}
		}},
		{desc: "a DNS option with a newline", field: "dns_config", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Options: []string{"ndots:5\nnameserver 10.0.0.66"}}
		}},
		{desc: "a pod name that is a path", field: "metadata", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Metadata.Name = "../../../../tmp/berth-advisory"
		}},
		{desc: "a pod namespace that is a path", field: "metadata", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Metadata.Namespace = "../../etc"
		}},
		{desc: "a pod uid with a NUL", field: "metadata", mutate: func(c *runtimeapi.PodSandboxConfig) {
			c.Metadata.Uid = "uid\x00../../etc"
		}},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			cfg := podConfig("hostile")
			test.mutate(cfg)
			_, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), test.field) {
				t.Errorf("RunPodSandbox: %v, want InvalidArgument naming %s", err, test.field)
			}
		})
	}
	for file, was := range map[string][]byte{
		"/proc/sys/kernel/core_pattern": corePattern, "/proc/sys/net/ipv4/conf/all/forwarding": forwarding,
		"/proc/sys/kernel/shmmni": shmmni, "/etc/hosts": hosts,
	} {
		if now, _ := os.ReadFile(file); string(now) != string(was) {
			t.Errorf("%s changed: %q, was %q", file, now, was)
		}
	}
	if _, err := os.Stat("/tmp/berth-advisory-core"); err == nil {
		t.Error("/tmp/berth-advisory-core exists")
	}
	assertNoPods(t, d)
}
