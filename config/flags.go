package config

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Parse builds the configuration from defaults, then the config file, then the command-line flags
// in args, which win. The file is --config when given (it must then exist), else DefaultFile if it
// exists.
func Parse(args []string, usage io.Writer) (Config, error) {
	// First pass: only to learn which file to read.
	scratch := Default()
	pre := NewFlagSet(&scratch, io.Discard)
	if err := pre.Parse(args); err != nil {
		// Report errors (and -help) with the real output in the second pass.
		pre = nil
	}
	path, explicit := DefaultFile, false
	if pre != nil {
		pre.Visit(func(f *flag.Flag) {
			if f.Name == "config" {
				path, explicit = f.Value.String(), true
			}
		})
	}

	cfg := Default()
	if pre != nil {
		if err := LoadFile(&cfg, path, !explicit); err != nil {
			return Config{}, err
		}
	}
	// Second pass: flags given on the command line win over the file.
	fs := NewFlagSet(&cfg, usage)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// NewFlagSet returns berthd's flag set, one flag per configuration key, writing into cfg, plus
// --config (read by Parse).
func NewFlagSet(cfg *Config, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("berthd", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.String("config", DefaultFile, "configuration file (TOML); flags override its keys")
	fs.Var((*stringValue)(&cfg.Listen), "listen", "unix socket to serve CRI on")
	fs.Var((*stringValue)(&cfg.Root), "root", "directory for persistent data")
	fs.Var((*stringValue)(&cfg.State), "state", "directory for runtime state")
	fs.Var((*stringValue)(&cfg.ContainerdAddress), "containerd-address", "socket of an existing containerd; empty starts a managed one")
	fs.Var((*stringValue)(&cfg.ContainerdBinary), "containerd-binary", "containerd executable for the managed containerd")
	fs.BoolVar(&cfg.ShimPrestart, "shim-prestart", cfg.ShimPrestart, "start each pod's shim with the pod and run its containers' tasks in it (managed containerd only; -shim-prestart=false: containerd starts it with the first container)")
	fs.Var((*stringValue)(&cfg.CNIConfDir), "cni-conf-dir", "directory of CNI network configurations")
	fs.Var((*stringValue)(&cfg.CNIConfTemplate), "cni-conf-template", "CNI config template rendered with the pod CIDRs the kubelet sends (empty: record them only)")
	fs.Var((*listValue)(&cfg.CNIBinDirs), "cni-bin-dirs", "comma-separated directories of CNI plugins")
	fs.Var((*stringValue)(&cfg.RegistryConfigDir), "registry-config-dir", "directory of registry hosts.toml files")
	fs.Var((*stringValue)(&cfg.StreamAddress), "stream-address", "host:port of the streaming server (port 0: any free port)")
	fs.Var((*stringValue)(&cfg.StreamTLSCertFile), "stream-tls-cert-file", "certificate (PEM) of the streaming server: serves HTTPS")
	fs.Var((*stringValue)(&cfg.StreamTLSKeyFile), "stream-tls-key-file", "private key (PEM) of the streaming server's certificate")
	fs.Var((*stringValue)(&cfg.MetricsAddress), "metrics-address", "host:port of the Prometheus endpoint (empty: off)")
	fs.Var((*stringValue)(&cfg.DebugAddress), "debug-address", "host:port of the Go profiling endpoint /debug/pprof/ (empty: off; unauthenticated, keep it on loopback)")
	fs.Var((*stringValue)(&cfg.CgroupDriver), "cgroup-driver", "auto, cgroupfs or systemd")
	fs.BoolVar(&cfg.TolerateMissingHugetlbController, "tolerate-missing-hugetlb-controller", cfg.TolerateMissingHugetlbController, "leave hugepage limits out when the node has no hugetlb cgroup controller (false: fail the container)")
	fs.Var(&cfg.ImagePullProgressTimeout, "image-pull-progress-timeout", "cancel an image pull that receives nothing for this long")
	fs.Var((*stringValue)(&cfg.LogLevel), "log-level", "debug, info, warn or error")
	fs.Var((*listValue)(&cfg.DefaultUlimits), "default-ulimits", "comma-separated rlimits of every container, name=soft:hard (empty: berthd's own, inherited)")
	fs.BoolVar(&cfg.EnableUnprivilegedPorts, "enable-unprivileged-ports", cfg.EnableUnprivilegedPorts, "let any user of a pod with its own network namespace bind ports below 1024 (net.ipv4.ip_unprivileged_port_start=0)")
	fs.BoolVar(&cfg.EnableUnprivilegedICMP, "enable-unprivileged-icmp", cfg.EnableUnprivilegedICMP, "let any user of a pod with its own network namespace ping (net.ipv4.ping_group_range over every gid)")
	fs.Var((*listValue)(&cfg.CDISpecDirs), "cdi-spec-dirs", "comma-separated directories of CDI device specs, lowest priority first (empty: CDI off)")
	fs.BoolVar(&cfg.RestoreCheckpoints, "restore-checkpoints", cfg.RestoreCheckpoints, "let CreateContainer and RestorePod restore checkpoints (checkpoint images; archives by path with checkpoint-archive-dirs)")
	fs.Var((*listValue)(&cfg.CheckpointArchiveDirs), "checkpoint-archive-dirs", "comma-separated directories whose checkpoint archives CreateContainer may name as its image (with restore-checkpoints)")
	fs.Var((*stringValue)(&cfg.CRIU), "criu", "criu executable for checkpoint and restore (empty: beside containerd, else on the PATH)")
	fs.Var((*handlersValue)(&cfg.RuntimeHandlers), "runtime-handler", "a runtime handler besides runc: name, or name=/path/to/oci-runtime (repeatable)")
	return fs
}

// handlersValue adds a runtime handler per --runtime-handler: name (the shim's runc) or
// name=binary.
type handlersValue map[string]string

func (h *handlersValue) String() string {
	var parts []string
	for name, bin := range *h {
		if bin == "" {
			parts = append(parts, name)
		} else {
			parts = append(parts, name+"="+bin)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (h *handlersValue) Set(v string) error {
	name, bin, _ := strings.Cut(v, "=")
	if name == "" {
		return fmt.Errorf("%q: want name or name=/path/to/oci-runtime", v)
	}
	if *h == nil {
		*h = map[string]string{}
	}
	(*h)[name] = bin
	return nil
}

type stringValue string

func (s *stringValue) String() string     { return string(*s) }
func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }

type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }
func (l *listValue) Set(v string) error {
	*l = nil
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
