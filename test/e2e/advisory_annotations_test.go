package e2e

import (
	"os"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI-O's GHSA-2cgq-h8xw-2v5j and GHSA-p4rx-7wvg-fwrc: a pod's annotations copied into the OCI
// spec let it steer runc (org.systemd.property.* sets properties of its systemd scope,
// org.criu.config points CRIU at a file of the node, bundle misleads hooks). Only what the
// handler's allowlist (pod-annotations, container-annotations) names reaches the spec, and
// nothing of a pod's or container's annotations or labels reaches containerd's records.
func TestAdvisoryAnnotationsReachTheSpecOnlyThroughTheAllowlist(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(conf, []byte("[pod-annotations]\nrunc = [\"example.com/*\"]\n[container-annotations]\nrunc = [\"example.org/mode\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := busyboxDaemon(t, "--config", conf)
	hostile := map[string]string{
		"org.systemd.property.CPUQuota": "100000%", "org.systemd.property.Delegate": "yes",
		"org.criu.config": "/etc/shadow", "bundle": "/", "io.containerd.runc.v2.group": "another-pod",
		"containerd.io/restart.status": "running",
	}
	cfg := podConfig("annotated")
	cfg.LogDirectory = t.TempDir()
	cfg.Annotations = map[string]string{"example.com/pod": "yes", "example.org/mode": "from-the-pod"}
	cfg.Labels = map[string]string{}
	for k, v := range hostile {
		cfg.Annotations[k], cfg.Labels[k] = v, v
	}
	e := runPodEnv(t, d, cfg)
	id := e.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		c.Annotations = map[string]string{"example.org/mode": "from-the-container", "example.com/container": "no"}
		c.Labels = map[string]string{}
		for k, v := range hostile {
			c.Annotations[k], c.Labels[k] = v, v
		}
	})
	client := containerdClient(t, d)
	for _, recID := range []string{e.pod, id} {
		c, err := client.LoadContainer(ctx(t), recID)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for k := range hostile {
			if _, ok := info.Labels[k]; ok {
				t.Errorf("containerd record %s has the pod's label %s", recID, k)
			}
		}
		if recID == e.pod {
			continue
		}
		spec, err := c.Spec(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		got := spec.Annotations
		for k, v := range hostile {
			if got[k] == v {
				t.Errorf("the spec has the config's %s=%q", k, v)
			}
		}
		for k, want := range map[string]string{"example.com/pod": "yes", "example.org/mode": "from-the-container"} {
			if got[k] != want {
				t.Errorf("spec annotation %s = %q, want %q (allowed)", k, got[k], want)
			}
		}
		if _, ok := got["example.com/container"]; ok {
			t.Error("a container annotation passed by the pod's pattern only")
		}
	}
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container %v", st.State)
	}
}
