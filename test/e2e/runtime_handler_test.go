package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRuntimeHandlers: handlers besides runc (--runtime-handler), as RuntimeClasses name them:
// test-handler runs runc under another name, as Kubernetes' CI sets it up; "logged" an OCI
// runtime executable of its own, here runc behind a script that logs its calls. Status lists
// them; a pod's handler runs its infra process and its containers.
func TestRuntimeHandlers(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	wrapper := filepath.Join(dir, "logged-runc")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", calls, tool(t, "runc"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts, "--cni-conf-dir", podNetwork(t),
		"--runtime-handler", "test-handler", "--runtime-handler", "logged="+wrapper)
	mustPull(t, d.Image, busyboxRef)

	st, err := d.Runtime.Status(ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range st.RuntimeHandlers {
		names = append(names, h.Name)
	}
	if want := []string{"", "runc", "logged", "test-handler"}; !slices.Equal(names, want) {
		t.Errorf("Status lists handlers %q, want %q", names, want)
	}

	logged := func() string { b, _ := os.ReadFile(calls); return string(b) }
	for _, h := range []string{"test-handler", "logged"} {
		cfg := podConfig(h)
		cfg.LogDirectory = t.TempDir()
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD // an infra process too
		before := logged()
		resp, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: h})
		if err != nil {
			t.Fatalf("RunPodSandbox with handler %s: %v", h, err)
		}
		e := &containerEnv{d: d, pod: resp.PodSandboxId, podCfg: cfg, logDir: cfg.LogDirectory}
		id := e.run(t, "app", nil)
		if s := e.status(t, id); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("handler %s: container %v", h, s.State)
		}
		ps, err := d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.pod})
		if err != nil || ps.Status.RuntimeHandler != h {
			t.Errorf("handler %s: PodSandboxStatus says %q (%v)", h, ps.GetStatus().GetRuntimeHandler(), err)
		}
		// The infra process's task and the container's: two creates and two starts.
		added := strings.TrimPrefix(logged(), before)
		creates, starts := strings.Count(added, "create "), strings.Count(added, "start ")
		switch {
		case h == "logged" && (creates < 2 || starts < 2):
			t.Errorf("handler logged: its runtime created %d and started %d tasks, want the infra's and the container's:\n%s", creates, starts, added)
		case h == "test-handler" && added != "":
			t.Errorf("handler test-handler ran the other handler's runtime:\n%s", added)
		}
	}
}
