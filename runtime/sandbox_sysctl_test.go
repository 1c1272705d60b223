package runtime

import (
	"maps"
	"testing"
)

func TestPodSysctls(t *testing.T) {
	defaults := map[string]string{sysctlUnprivilegedPortStart: "0", sysctlPingGroupRange: "0 2147483647"}
	tests := []struct {
		desc        string
		ports, icmp bool
		pod         map[string]string
		ownNet      bool
		want        map[string]string
	}{
		{desc: "own network gets both", ports: true, icmp: true, ownNet: true, want: defaults},
		{desc: "node network gets none", ports: true, icmp: true, ownNet: false, want: map[string]string{}},
		{desc: "turned off", ownNet: true, want: map[string]string{}},
		{desc: "the pod's own values win", ports: true, icmp: true, ownNet: true,
			pod:  map[string]string{sysctlUnprivilegedPortStart: "80", "net.core.somaxconn": "1024"},
			want: map[string]string{sysctlUnprivilegedPortStart: "80", sysctlPingGroupRange: "0 2147483647", "net.core.somaxconn": "1024"}},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			r := &Runtime{unprivilegedPorts: test.ports, unprivilegedICMP: test.icmp}
			if got := r.podSysctls(test.pod, test.ownNet); !maps.Equal(got, test.want) {
				t.Errorf("podSysctls = %v, want %v", got, test.want)
			}
		})
	}
}
