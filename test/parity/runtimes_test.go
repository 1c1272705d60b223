package parity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// side is one of the two runtimes under comparison.
type side struct {
	name    string // "berth" or "containerd"
	runtime runtimeapi.RuntimeServiceClient
	image   runtimeapi.ImageServiceClient
	// engine is the containerd that holds the runtime's records, in namespace ns.
	engine *containerd.Client
	ns     string
	// dir is where this side's per-case files go (logs, host paths).
	dir string
	// stateDir is the runtime's own directory (root, state); replaced by <root> when comparing.
	stateDir string
	// cgroupParent is the parent of this side's pod cgroups.
	cgroupParent string
}

// outcome is what one side made of a case.
type outcome struct {
	// err is the first step that failed, "" when the container ran.
	err string
	// checkErr is what the case's own check found wrong in a container that ran.
	checkErr string
	// podID and ctrID are the ids the side chose, for normalising.
	podID, ctrID               string
	spec, view, status, sysctl Fields
}

// sysctlProbe are the sysctls read inside every container: the pod's network and IPC
// namespace's, which the pod's own sysctls and the runtime's defaults set.
var sysctlProbe = []string{
	"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range", "net.core.somaxconn",
	"net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "kernel.shm_rmid_forced", "kernel.shmmni",
}

// run sends c to s: a pod, a container in it, started; then reads the spec from the runtime's
// containerd, the process's view from /proc and the container's status. The pod is removed
// before run returns.
func (s *side) run(ctx context.Context, c *testCase) *outcome {
	out := &outcome{}
	fail := func(step string, err error) *outcome {
		out.err = fmt.Sprintf("%s: %v", step, err)
		return out
	}
	caseDir := filepath.Join(s.dir, c.name)
	if err := os.MkdirAll(caseDir, 0o755); err != nil {
		return fail("setup", err)
	}
	env := &caseEnv{side: s.name, dir: caseDir, shared: sharedDir}
	pod := kubeletPod(c.name, s, caseDir)
	if c.pod != nil {
		c.pod(pod, env)
	}
	ctr := kubeletContainer(c.name, c.imageRef(), caseDir, pod)
	if c.ctr != nil {
		c.ctr(ctr, env)
	}
	for _, ref := range c.pull {
		if _, err := s.image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, SandboxConfig: pod}); err != nil {
			return fail("PullImage "+ref, err)
		}
	}
	runResp, err := s.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		return fail("RunPodSandbox", err)
	}
	out.podID = runResp.PodSandboxId
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		s.runtime.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: out.podID})
		s.runtime.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: out.podID})
	}()
	createResp, err := s.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: out.podID, Config: ctr, SandboxConfig: pod})
	if err != nil {
		return fail("CreateContainer", err)
	}
	out.ctrID = createResp.ContainerId
	if _, err := s.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: out.ctrID}); err != nil {
		return fail("StartContainer", err)
	}
	nsctx := namespaces.WithNamespace(ctx, s.ns)
	rec, err := s.engine.ContainerService().Get(nsctx, out.ctrID)
	if err != nil {
		return fail("read the container record", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(rec.Spec.GetValue(), &spec); err != nil {
		return fail("decode the spec", err)
	}
	if out.spec, err = Flatten(&spec); err != nil {
		return fail("flatten the spec", err)
	}
	pid, err := s.pid(nsctx, out.ctrID)
	if err != nil {
		return fail("find the container's process", err)
	}
	if err := waitExec(ctx, pid); err != nil {
		return fail("wait for the container's process", err)
	}
	if out.view, err = ProcessView(pid); err != nil {
		return fail("read the container's process", err)
	}
	if out.sysctl, err = s.sysctls(ctx, out.ctrID); err != nil {
		return fail("read sysctls", err)
	}
	st, err := s.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: out.ctrID})
	if err != nil {
		return fail("ContainerStatus", err)
	}
	if out.status, err = containerStatusFields(st.Status); err != nil {
		return fail("flatten the status", err)
	}
	if c.check != nil {
		if err := c.check(ctx, s, out); err != nil {
			out.checkErr = err.Error()
		}
	}
	return out
}

// pid is the container's init process on the node. A container that starts has a running task
// by the time StartContainer returns.
func (s *side) pid(ctx context.Context, id string) (int, error) {
	ctr, err := s.engine.LoadContainer(ctx, id)
	if err != nil {
		return 0, err
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return 0, err
	}
	return int(task.Pid()), nil
}

// waitExec waits until the container's process has left runc's init for its own program: the
// task is started once runc start returns, a moment before the execve that sets its final
// capabilities.
func waitExec(ctx context.Context, pid int) error {
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(comm), "runc") {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// sysctls reads sysctlProbe inside the container (a /proc/sys read answers for the reader's
// namespaces), as the container's own user.
func (s *side) sysctls(ctx context.Context, id string) (Fields, error) {
	files := make([]string, len(sysctlProbe))
	for i, n := range sysctlProbe {
		files[i] = "/proc/sys/" + strings.ReplaceAll(n, ".", "/")
	}
	// One line per file, even for a file the container cannot read.
	script := `for f in "$@"; do v=$(cat "$f" 2>/dev/null) || v='(unreadable)'; echo "$v"; done`
	resp, err := s.runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: append([]string{"sh", "-c", script, "sh"}, files...), Timeout: 20})
	if err != nil {
		return nil, err
	}
	if resp.ExitCode != 0 {
		return nil, fmt.Errorf("exit %d: %s", resp.ExitCode, resp.Stderr)
	}
	lines := strings.Split(strings.TrimRight(string(resp.Stdout), "\n"), "\n")
	if len(lines) != len(sysctlProbe) {
		return nil, fmt.Errorf("%d lines for %d sysctls: %q", len(lines), len(sysctlProbe), resp.Stdout)
	}
	out := Fields{}
	for i, n := range sysctlProbe {
		out["sysctl["+n+"]"] = strings.Join(strings.Fields(lines[i]), " ")
	}
	return out, nil
}

// containerStatusFields flattens what ContainerStatus says of a container that the two runtimes must
// agree on; times, ids and the log path are each runtime's own.
func containerStatusFields(st *runtimeapi.ContainerStatus) (Fields, error) {
	c := proto.Clone(st).(*runtimeapi.ContainerStatus)
	c.Id, c.CreatedAt, c.StartedAt, c.FinishedAt, c.LogPath = "", 0, 0, 0, ""
	c.Metadata, c.Image, c.ImageRef, c.ImageId = nil, nil, "", ""
	f, err := Flatten(map[string]any{"status": c})
	if err != nil {
		return nil, err
	}
	out := Fields{}
	for k, v := range f {
		out[strings.TrimPrefix(k, "status.")] = v
	}
	return out, nil
}

// pullAll pulls refs on every side at once.
func pullAll(ctx context.Context, sides []*side, refs []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(sides)*len(refs))
	for i, s := range sides {
		for j, ref := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
					errs[i*len(refs)+j] = fmt.Errorf("%s: pull %s: %w", s.name, ref, err)
				}
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}
