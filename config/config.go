// Package config holds berthd's configuration: its defaults, the TOML file that overrides them
// and the command-line flags that override the file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/berth-runtime/berth/runtime/annotation"
)

// DefaultFile is where berthd looks for its configuration when --config is not given.
const DefaultFile = "/etc/berth/config.toml"

// Cgroup drivers accepted by CgroupDriver.
const (
	CgroupDriverAuto     = "auto"
	CgroupDriverCgroupfs = "cgroupfs"
	CgroupDriverSystemd  = "systemd"
)

// Config is berthd's configuration. Every field is a key of the config file (its toml tag) and a
// command-line flag of the same name (see BindFlags).
type Config struct {
	// Listen is the path of the unix socket the CRI services are served on.
	Listen string `toml:"listen" json:"listen"`
	// Root holds persistent data: the managed containerd's root, berth's own files.
	Root string `toml:"root" json:"root"`
	// State holds runtime state that does not survive a reboot: sockets, pinned namespaces.
	State string `toml:"state" json:"state"`
	// ContainerdAddress is the socket of an existing containerd to use. Empty means berthd starts
	// and supervises its own containerd.
	ContainerdAddress string `toml:"containerd-address" json:"containerd-address"`
	// ContainerdBinary is the containerd executable a managed containerd is started from.
	ContainerdBinary string `toml:"containerd-binary" json:"containerd-binary"`
	// ShimPrestart makes berthd start a pod's runc shim itself while the pod's network is set up,
	// and create the pod's tasks in it, rather than containerd with the pod's first container
	// (managed containerd only; on by default). It takes the shim's start off the first
	// container's start and one execution of the shim binary off every task.
	ShimPrestart bool `toml:"shim-prestart" json:"shim-prestart"`
	// CNIConfDir is the directory of CNI network configurations; the first by file name is used.
	CNIConfDir string `toml:"cni-conf-dir" json:"cni-conf-dir"`
	// CNIConfTemplate is a CNI network configuration template (Go text/template; see
	// cni.TemplateData) rendered into CNIConfDir as 10-berth-net.conflist with the pod CIDRs the
	// kubelet sends (UpdateRuntimeConfig); empty: the CIDRs are only recorded.
	CNIConfTemplate string `toml:"cni-conf-template" json:"cni-conf-template"`
	// CNIBinDirs are the directories searched for CNI plugin binaries, in order.
	CNIBinDirs []string `toml:"cni-bin-dirs" json:"cni-bin-dirs"`
	// RegistryConfigDir holds containerd-style hosts.toml files, one directory per registry.
	RegistryConfigDir string `toml:"registry-config-dir" json:"registry-config-dir"`
	// StreamAddress is the host:port of the streaming server (exec, attach, port-forward).
	// Port 0 picks a free port at start.
	StreamAddress string `toml:"stream-address" json:"stream-address"`
	// StreamTLSCertFile and StreamTLSKeyFile, both or neither, make the streaming server HTTPS.
	StreamTLSCertFile string `toml:"stream-tls-cert-file" json:"stream-tls-cert-file"`
	StreamTLSKeyFile  string `toml:"stream-tls-key-file" json:"stream-tls-key-file"`
	// MetricsAddress is the host:port of the Prometheus endpoint; empty disables it.
	MetricsAddress string `toml:"metrics-address" json:"metrics-address"`
	// DebugAddress is the host:port of the Go profiling endpoint (/debug/pprof/); empty disables
	// it. It is unauthenticated: keep it on loopback.
	DebugAddress string `toml:"debug-address" json:"debug-address"`
	// CgroupDriver is auto, cgroupfs or systemd.
	CgroupDriver string `toml:"cgroup-driver" json:"cgroup-driver"`
	// TolerateMissingHugetlbController leaves a container's hugepage limits out of its spec when
	// the node has no hugetlb cgroup controller for it (the kubelet sends them for every page
	// size the node has); false makes such a container fail to create (containerd's
	// tolerate_missing_hugetlb_controller).
	TolerateMissingHugetlbController bool `toml:"tolerate-missing-hugetlb-controller" json:"tolerate-missing-hugetlb-controller"`
	// ImagePullProgressTimeout cancels an image pull that has received no bytes for this long.
	ImagePullProgressTimeout Duration `toml:"image-pull-progress-timeout" json:"image-pull-progress-timeout"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log-level" json:"log-level"`
	// RuntimeHandlers are runtime handlers besides runc, the default, by the name a RuntimeClass
	// gives as its handler: each runs its pods' containers with containerd's runc shim and the
	// OCI runtime executable it names (runc-compatible; empty: the shim's runc, the default
	// handler under another name, as Kubernetes' CI sets up "test-handler").
	RuntimeHandlers map[string]string `toml:"runtime-handlers" json:"runtime-handlers"`
	// DefaultUlimits are rlimits every container's process gets, as "name=soft:hard" or
	// "name=limit" (nofile=1048576:1048576, say; the names of ulimit and CRI-O's
	// default_ulimits). None, the default: a container inherits berthd's own limits through its
	// shim, as under containerd's CRI.
	DefaultUlimits []string `toml:"default-ulimits" json:"default-ulimits"`
	// EnableUnprivilegedPorts sets net.ipv4.ip_unprivileged_port_start=0 in every pod with a
	// network namespace of its own that does not set it, so that a non-root process can bind
	// ports below 1024 (containerd's enable_unprivileged_ports).
	EnableUnprivilegedPorts bool `toml:"enable-unprivileged-ports" json:"enable-unprivileged-ports"`
	// EnableUnprivilegedICMP sets net.ipv4.ping_group_range to every gid in every pod with a
	// network namespace of its own that does not set it, so that ping needs no CAP_NET_RAW
	// (containerd's enable_unprivileged_icmp).
	EnableUnprivilegedICMP bool `toml:"enable-unprivileged-icmp" json:"enable-unprivileged-icmp"`
	// CDISpecDirs are the directories of Container Device Interface specs, in rising priority
	// (a device in a later directory wins): where device plugins and DRA drivers describe the
	// devices a container's CDI_devices and cdi.k8s.io/ annotations name. Empty turns CDI off.
	CDISpecDirs []string `toml:"cdi-spec-dirs" json:"cdi-spec-dirs"`
	// PodAnnotations and ContainerAnnotations are, by runtime handler ("runc" for the default),
	// the pod annotations and the container annotations that reach the OCI spec of the
	// handler's containers, as patterns (shell globs: "example.com/*"), as containerd's
	// pod_annotations and container_annotations. None do by default: runc and the hooks behind
	// it act on some (org.systemd.property.*, org.criu.config), and a pattern that would pass one
	// of those is refused.
	PodAnnotations       map[string][]string `toml:"pod-annotations" json:"pod-annotations"`
	ContainerAnnotations map[string][]string `toml:"container-annotations" json:"container-annotations"`
	// RestoreCheckpoints lets CreateContainer and RestorePod restore checkpoints: a checkpoint
	// holds a process's whole state as another node saw it, so it is off by default (CRI-O's
	// default is checkpoint-only too). Checkpointing needs no switch.
	RestoreCheckpoints bool `toml:"restore-checkpoints" json:"restore-checkpoints"`
	// CheckpointArchiveDirs are the directories whose checkpoint archives a CreateContainer may
	// name by path as its image (with restore-checkpoints). Every pod may restore any archive in
	// them; none by default, so only checkpoint images (OCI images made from an archive) restore.
	CheckpointArchiveDirs []string `toml:"checkpoint-archive-dirs" json:"checkpoint-archive-dirs"`
	// CRIU is the criu executable runc checkpoints and restores with (it must be on the shim's
	// PATH; berth's managed containerd puts containerd's own directory first there). Empty:
	// criu beside containerd, where make criu installs it, else on berthd's PATH.
	CRIU string `toml:"criu" json:"criu"`
}

// AnnotationAllowlists are the pod and container annotation patterns of each runtime handler.
func (c *Config) AnnotationAllowlists() map[string]annotation.Allowlist {
	out := map[string]annotation.Allowlist{}
	for h, p := range c.PodAnnotations {
		a := out[h]
		a.Pod = p
		out[h] = a
	}
	for h, p := range c.ContainerAnnotations {
		a := out[h]
		a.Container = p
		out[h] = a
	}
	return out
}

// Default returns the configuration berthd runs with when nothing overrides it.
func Default() Config {
	return Config{
		Listen:            "/run/berth/berth.sock",
		Root:              "/var/lib/berth",
		State:             "/run/berth",
		ContainerdBinary:  "/opt/berth/bin/containerd",
		CNIConfDir:        "/etc/cni/net.d",
		CNIBinDirs:        []string{"/opt/cni/bin", "/usr/lib/cni"},
		RegistryConfigDir: "/etc/berth/certs.d",
		StreamAddress:     "127.0.0.1:0",
		CgroupDriver:      CgroupDriverAuto,

		TolerateMissingHugetlbController: true,
		LogLevel:                         "info",
		ShimPrestart:                     true,

		ImagePullProgressTimeout: Duration(time.Minute),
		EnableUnprivilegedPorts:  true,
		EnableUnprivilegedICMP:   true,
		CDISpecDirs:              []string{"/etc/cdi", "/var/run/cdi"},
	}
}

// LoadFile reads the TOML file at path over cfg. Unknown keys are an error, so that a typo does not
// silently fall back to a default. A missing file is not an error when missingOK is true.
func LoadFile(cfg *Config, path string, missingOK bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if missingOK && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read config file: %w", err)
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			return fmt.Errorf("config file %s: unknown key: %s", path, strings.TrimSpace(strict.String()))
		}
		var derr *toml.DecodeError
		if errors.As(err, &derr) {
			row, col := derr.Position()
			return fmt.Errorf("config file %s:%d:%d: %s", path, row, col, derr.Error())
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Validate reports the first value of cfg that berthd cannot run with, naming the key.
func (c *Config) Validate() error {
	for _, p := range []struct{ key, val string }{
		{"listen", c.Listen}, {"root", c.Root}, {"state", c.State},
		{"cni-conf-dir", c.CNIConfDir}, {"registry-config-dir", c.RegistryConfigDir},
	} {
		if p.val == "" {
			return fmt.Errorf("%s: must not be empty", p.key)
		}
		if !filepath.IsAbs(p.val) {
			return fmt.Errorf("%s: %q is not an absolute path", p.key, p.val)
		}
	}
	if c.ContainerdAddress == "" && c.ContainerdBinary == "" {
		return errors.New("containerd-binary: must not be empty when no containerd-address is given")
	}
	for _, d := range c.CheckpointArchiveDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("checkpoint-archive-dirs: %q is not an absolute path", d)
		}
	}
	if c.CNIConfTemplate != "" && !filepath.IsAbs(c.CNIConfTemplate) {
		return fmt.Errorf("cni-conf-template: %q is not an absolute path", c.CNIConfTemplate)
	}
	for _, dirs := range []struct {
		key  string
		dirs []string
	}{{"cni-bin-dirs", c.CNIBinDirs}, {"cdi-spec-dirs", c.CDISpecDirs}} {
		for _, d := range dirs.dirs {
			if !filepath.IsAbs(d) {
				return fmt.Errorf("%s: %q is not an absolute path", dirs.key, d)
			}
		}
	}
	if _, _, err := net.SplitHostPort(c.StreamAddress); err != nil {
		return fmt.Errorf("stream-address: %q is not host:port: %v", c.StreamAddress, err)
	}
	if (c.StreamTLSCertFile == "") != (c.StreamTLSKeyFile == "") {
		return errors.New("stream-tls-cert-file and stream-tls-key-file: give both or neither")
	}
	for _, a := range []struct{ key, val string }{{"metrics-address", c.MetricsAddress}, {"debug-address", c.DebugAddress}} {
		if a.val == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.val); err != nil {
			return fmt.Errorf("%s: %q is not host:port: %v", a.key, a.val, err)
		}
	}
	switch c.CgroupDriver {
	case CgroupDriverAuto, CgroupDriverCgroupfs, CgroupDriverSystemd:
	default:
		return fmt.Errorf("cgroup-driver: %q is not one of auto, cgroupfs, systemd", c.CgroupDriver)
	}
	if c.ImagePullProgressTimeout <= 0 {
		return fmt.Errorf("image-pull-progress-timeout: %s must be positive", c.ImagePullProgressTimeout)
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return err
	}
	for _, u := range c.DefaultUlimits {
		if _, err := ParseUlimit(u); err != nil {
			return fmt.Errorf("default-ulimits: %w", err)
		}
	}
	for h, a := range c.AnnotationAllowlists() {
		if _, ok := c.RuntimeHandlers[h]; !ok && h != DefaultRuntimeHandler {
			return fmt.Errorf("pod-annotations, container-annotations: %q is not a runtime handler", h)
		}
		if err := a.Validate(); err != nil {
			return fmt.Errorf("pod-annotations, container-annotations: %s: %w", h, err)
		}
	}
	for name, bin := range c.RuntimeHandlers {
		if !handlerName.MatchString(name) || len(name) > 63 {
			return fmt.Errorf("runtime-handlers: %q is not a handler name (a DNS label: lowercase letters, digits and '-')", name)
		}
		if name == DefaultRuntimeHandler {
			return fmt.Errorf("runtime-handlers: %q is the default handler", name)
		}
		if bin != "" && !filepath.IsAbs(bin) {
			return fmt.Errorf("runtime-handlers: %s = %q is not an absolute path", name, bin)
		}
	}
	return nil
}

// DefaultRuntimeHandler is the handler of a pod that names none: runc.
const DefaultRuntimeHandler = "runc"

// handlerName is what a RuntimeClass's handler must be (a DNS-1123 label).
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Ulimit is one of DefaultUlimits: an rlimit type (RLIMIT_NOFILE) and its soft and hard limits.
type Ulimit struct {
	Type       string
	Soft, Hard uint64
}

// ulimitNames are the rlimits a ulimit may name, as ulimit and CRI-O name them.
var ulimitNames = []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

// ParseUlimit parses "name=soft:hard" or "name=limit"; the soft limit may not exceed the hard.
func ParseUlimit(s string) (Ulimit, error) {
	name, limits, ok := strings.Cut(s, "=")
	if !ok || !slices.Contains(ulimitNames, name) {
		return Ulimit{}, fmt.Errorf("%q is not name=soft:hard with a name of %s", s, strings.Join(ulimitNames, ", "))
	}
	softS, hardS, pair := strings.Cut(limits, ":")
	if !pair {
		hardS = softS
	}
	soft, err1 := strconv.ParseUint(softS, 10, 64)
	hard, err2 := strconv.ParseUint(hardS, 10, 64)
	if err1 != nil || err2 != nil {
		return Ulimit{}, fmt.Errorf("%q: limits must be whole numbers", s)
	}
	if soft > hard {
		return Ulimit{}, fmt.Errorf("%q: the soft limit is above the hard one", s)
	}
	return Ulimit{Type: "RLIMIT_" + strings.ToUpper(name), Soft: soft, Hard: hard}, nil
}

// ParseLogLevel turns a log-level value into a slog level.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

// Duration is a time.Duration written as "90s" or "1m30s" in the config file and on the command line.
type Duration time.Duration

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 90s or 2m", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalText parses a config file value.
func (d *Duration) UnmarshalText(b []byte) error { return d.Set(string(b)) }

// MarshalText formats d for the config file and JSON.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
