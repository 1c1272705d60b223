package annotation

import (
	"maps"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		desc string
		a    Allowlist
		ok   bool
	}{
		{desc: "none", a: Allowlist{}, ok: true},
		{desc: "a key and a prefix", a: Allowlist{Pod: []string{"example.com/gpu-mode"}, Container: []string{"io.kubernetes.cri-o.userns-mode", "example.com/*"}}, ok: true},
		{desc: "everything", a: Allowlist{Pod: []string{"*"}}},
		{desc: "systemd properties", a: Allowlist{Container: []string{"org.systemd.property.*"}}},
		{desc: "a family that holds systemd properties", a: Allowlist{Pod: []string{"org.*"}}},
		{desc: "criu's config", a: Allowlist{Pod: []string{"org.criu.config"}}},
		{desc: "the bundle", a: Allowlist{Container: []string{"bundle"}}},
		{desc: "the shim's group", a: Allowlist{Pod: []string{"io.containerd.*"}}},
		{desc: "the CRI's own", a: Allowlist{Pod: []string{"io.kubernetes.cri.*"}}},
		{desc: "CDI devices", a: Allowlist{Pod: []string{"cdi.k8s.io/*"}}},
		{desc: "malformed", a: Allowlist{Pod: []string{"example.com/[gpu"}}},
		{desc: "empty", a: Allowlist{Pod: []string{""}}},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if err := test.a.Validate(); (err == nil) != test.ok {
				t.Errorf("Validate(%v) = %v, want ok %v", test.a, err, test.ok)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	pod := map[string]string{"example.com/mode": "pod", "example.com/pod-only": "1", "org.systemd.property.CPUQuota": "1%", "other": "x"}
	container := map[string]string{"example.com/mode": "container", "org.criu.config": "/etc/shadow"}
	tests := []struct {
		desc string
		a    Allowlist
		want map[string]string
	}{
		{desc: "nothing listed: nothing passes", a: Allowlist{}, want: nil},
		{desc: "pod patterns take pod annotations only", a: Allowlist{Pod: []string{"example.com/*"}},
			want: map[string]string{"example.com/mode": "pod", "example.com/pod-only": "1"}},
		{desc: "container patterns take container annotations only", a: Allowlist{Container: []string{"example.com/*"}},
			want: map[string]string{"example.com/mode": "container"}},
		{desc: "the container's wins", a: Allowlist{Pod: []string{"example.com/*"}, Container: []string{"example.com/mode"}},
			want: map[string]string{"example.com/mode": "container", "example.com/pod-only": "1"}},
		{desc: "exact key", a: Allowlist{Pod: []string{"other"}}, want: map[string]string{"other": "x"}},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if got := test.a.Filter(pod, container); !maps.Equal(got, test.want) {
				t.Errorf("Filter = %v, want %v", got, test.want)
			}
		})
	}
}
