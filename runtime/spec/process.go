package spec

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
)

// command merges the config's command and args with the image's entrypoint and cmd, as the
// kubelet documents it: a command replaces the entrypoint (and the image's cmd); args alone
// replace the cmd.
func command(in Input) ([]string, error) {
	var args []string
	switch cmd, a := in.Config.GetCommand(), in.Config.GetArgs(); {
	case len(cmd) > 0:
		args = append(append(args, cmd...), a...)
	case len(a) > 0:
		args = append(append(args, in.Image.Entrypoint...), a...)
	default:
		args = append(append(args, in.Image.Entrypoint...), in.Image.Cmd...)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("config.command: none given and the image has no entrypoint or cmd: %w", errdefs.ErrInvalidArgument)
	}
	return args, nil
}

// environment is the image's environment, then the config's (a key set twice takes the later
// value), then HOSTNAME, TERM for a tty and PATH unless set.
func environment(in Input) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, kv := range in.Image.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, e := range in.Config.GetEnvs() {
		set(e.GetKey(), string(e.GetValue()))
	}
	if _, ok := vals["HOSTNAME"]; !ok && in.Sandbox.Hostname != "" {
		set("HOSTNAME", in.Sandbox.Hostname)
	}
	if _, ok := vals["TERM"]; !ok && in.Config.GetTty() {
		set("TERM", "xterm") // what a terminal of the runtime's is, as Docker and containerd say
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + vals[k]
	}
	return out
}

// withProcess sets the process: args, environment, working directory and terminal.
func withProcess(in Input) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		args, err := command(in)
		if err != nil {
			return err
		}
		s.Process.Args = args
		s.Process.Env = environment(in)
		s.Process.Cwd = "/"
		if wd := in.Config.GetWorkingDir(); wd != "" {
			s.Process.Cwd = wd
		} else if in.Image.WorkingDir != "" {
			s.Process.Cwd = in.Image.WorkingDir
		}
		s.Process.Terminal = in.Config.GetTty()
		// containerd's default spec caps open files at 1024; a container gets the runtime's
		// own limits (inherited through the shim) unless the node's operator sets ulimits.
		s.Process.Rlimits = slices.Clone(in.Settings.Ulimits)
		return nil
	}
}
