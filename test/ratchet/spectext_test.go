package ratchet

import "testing"

func TestSpecText(t *testing.T) {
	for name, want := range map[string]string{
		"[sig-node] Secrets should be consumable via the environment [Conformance] [NodeConformance] [sig-node, NodeConformance, Conformance]": "[sig-node] Secrets should be consumable via the environment [Conformance] [NodeConformance]",
		"[sig-node] PrivilegedPod should enable privileged commands [LinuxOnly] [NodeConformance] [sig-node, NodeConformance]":                 "[sig-node] PrivilegedPod should enable privileged commands [LinuxOnly] [NodeConformance]",
		"a spec without labels [NodeConformance]": "a spec without labels [NodeConformance]",
	} {
		if got := SpecText(name); got != want {
			t.Errorf("SpecText(%q) = %q, want %q", name, got, want)
		}
	}
}
