// Package annotation decides which of a pod's and a container's annotations reach the OCI spec
// of its containers. None do unless an operator lists them for the pod's runtime handler
// (containerd's pod_annotations and container_annotations are the model): runc and the hooks and
// runtimes behind it act on some annotations (org.systemd.property.* sets properties of the
// container's systemd scope, org.criu.config points CRIU at a file, bundle names the bundle),
// and a pod must not steer them (CRI-O's GHSA-2cgq-h8xw-2v5j, GHSA-p4rx-7wvg-fwrc).
package annotation

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Allowlist is what one runtime handler passes through: patterns (shell globs, as
// filepath.Match reads them: "example.com/*") of the pod annotations and of the container
// annotations that reach the spec.
type Allowlist struct {
	Pod, Container []string
}

// reserved are annotations that the OCI runtime, its hooks or berth itself act on, one example
// key of each family: no pattern may match one, so that an allowlist cannot open them to pods by
// accident ("*", "org.*").
var reserved = []string{
	"org.systemd.property.CPUQuota",  // runc: properties of the container's systemd scope
	"org.criu.config",                // runc: the CRIU configuration file of a checkpoint
	"bundle",                         // the OCI bundle's path, read by hooks
	"run.oci.handler",                // crun: handlers such as krun and wasm
	"io.containerd.runc.v2.group",    // the runc shim: which shim runs the task
	"io.kubernetes.cri.sandbox-id",   // what hooks and node agents read to know the pod
	"cdi.k8s.io/vendor_class.device", // CDI devices: berth reads them from the config itself
}

// Validate checks every pattern: well formed, and matching no annotation the OCI runtime or
// berth acts on.
func (a Allowlist) Validate() error {
	for _, list := range [][]string{a.Pod, a.Container} {
		for _, p := range list {
			if p == "" || strings.ContainsAny(p, " \t\n") {
				return fmt.Errorf("annotation pattern %q: empty or with white space", p)
			}
			if _, err := filepath.Match(p, ""); err != nil {
				return fmt.Errorf("annotation pattern %q: %w", p, err)
			}
			for _, key := range reserved {
				if ok, _ := filepath.Match(p, key); ok {
					return fmt.Errorf("annotation pattern %q would pass %q, which the OCI runtime or berth acts on, from pods", p, key)
				}
			}
		}
	}
	return nil
}

// Filter returns the annotations of pod and of container that the allowlist passes; a
// container's annotation wins over its pod's of the same key.
func (a Allowlist) Filter(pod, container map[string]string) map[string]string {
	out := map[string]string{}
	pass(out, a.Pod, pod)
	pass(out, a.Container, container)
	if len(out) == 0 {
		return nil
	}
	return out
}

func pass(out map[string]string, patterns []string, in map[string]string) {
	if len(patterns) == 0 {
		return
	}
	for k, v := range in {
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, k); ok {
				out[k] = v
				break
			}
		}
	}
}
