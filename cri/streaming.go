package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// Streams hands out the streaming server's one-time URLs for exec, attach and port-forward.
type Streams interface {
	GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// Exec prepares a streaming exec in a running container and returns the URL to connect to.
func (s *RuntimeService) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, invalid("cmd: empty")
	}
	if err := s.checkStreamable(ctx, req.GetContainerId(), req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	resp, err := s.streams.GetExec(req)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// Attach prepares a streaming attach to a running container and returns the URL to connect to.
func (s *RuntimeService) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := s.checkStreamable(ctx, req.GetContainerId(), req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, err
	}
	c, _ := s.containers.Container(ctx, req.GetContainerId())
	if req.GetStdin() && !c.Config.GetStdin() {
		return nil, failedPrecondition("container %s was not created with stdin", c.ID)
	}
	resp, err := s.streams.GetAttach(req)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// PortForward prepares port forwarding into a ready pod and returns the URL to connect to.
func (s *RuntimeService) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, invalid("pod_sandbox_id: empty")
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, invalid("port: %d is not a TCP port", p)
		}
	}
	pod, err := s.pods.PodSandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	if pod.State != runtime.SandboxReady {
		return nil, failedPrecondition("pod sandbox %s is not ready", pod.ID)
	}
	resp, err := s.streams.GetPortForward(req)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// checkStreamable checks what every exec and attach needs: a running container and a sensible
// choice of streams.
func (s *RuntimeService) checkStreamable(ctx context.Context, id string, tty, stdin, stdout, stderr bool) error {
	switch {
	case id == "":
		return invalid("container_id: empty")
	case !stdin && !stdout && !stderr:
		return invalid("one of stdin, stdout and stderr must be set")
	case tty && stderr:
		return invalid("stderr: a terminal has no separate stderr (tty and stderr cannot both be set)")
	}
	c, err := s.containers.Container(ctx, id)
	if err != nil {
		return toStatus(err)
	}
	if c.State.State != runtime.ContainerRunning {
		return failedPrecondition("container %s is %s, not running", c.ID, c.State.State)
	}
	return nil
}
