package runtime

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"sort"
	"strings"
	"syscall"
	"unicode"

	"github.com/containerd/errdefs"

	"github.com/berth-runtime/berth/runtime/namespace"
)

// ipcSysctls are the sysctls of the IPC namespace (as the kubelet's sysctl allowlist knows them);
// every net.* sysctl belongs to the network namespace.
var ipcSysctls = map[string]bool{
	"kernel.shm_rmid_forced": true, "kernel.shmmax": true, "kernel.shmall": true, "kernel.shmmni": true,
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
}

// sysctlNamespace says which of the pod's namespaces a sysctl belongs to, or why it cannot be set
// for a pod (it is not namespaced, so it would change the node).
func sysctlNamespace(name string) (namespace.Kind, error) {
	switch {
	case strings.HasPrefix(name, "net."):
		return namespace.Net, nil
	case ipcSysctls[name], strings.HasPrefix(name, "fs.mqueue."):
		return namespace.IPC, nil
	}
	return "", fmt.Errorf("sysctl %q is not namespaced: setting it for a pod would change the node: %w", name, errdefs.ErrInvalidArgument)
}

// checkSysctls validates a pod's sysctls before anything is made: each must be namespaced, and
// the pod must own that namespace.
func checkSysctls(sysctls map[string]string, ownNet, ownIPC bool) error {
	for name, value := range sysctls {
		kind, err := sysctlNamespace(name)
		if err != nil {
			return err
		}
		if value == "" || strings.ContainsFunc(value, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) {
			// One value for one file: no line of another (CRI-O's GHSA-6x2m-w449-qwx7).
			return fmt.Errorf("sysctl %s: value %q is empty or has control characters: %w", name, value, errdefs.ErrInvalidArgument)
		}
		if (kind == namespace.Net && !ownNet) || (kind == namespace.IPC && !ownIPC) {
			return fmt.Errorf("sysctl %q needs the pod's own %s namespace, but the pod uses the node's: %w", name, kind, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// The sysctls a pod with its own network namespace gets unless it sets them: any user may bind
// ports below 1024 and send ICMP echo requests (ping without CAP_NET_RAW), which is safe in a
// namespace of the pod's own and what containerd (since 2.0) and CRI-O give.
const (
	sysctlUnprivilegedPortStart = "net.ipv4.ip_unprivileged_port_start"
	sysctlPingGroupRange        = "net.ipv4.ping_group_range"
)

// podSysctls are the sysctls to write in a pod's namespaces: its own, and for a pod with its own
// network namespace the unprivileged ports and ICMP defaults that r's options turn on.
func (r *Runtime) podSysctls(cfg map[string]string, ownNet bool) map[string]string {
	out := maps.Clone(cfg)
	if out == nil {
		out = map[string]string{}
	}
	if !ownNet {
		return out
	}
	if _, set := out[sysctlUnprivilegedPortStart]; !set && r.unprivilegedPorts {
		out[sysctlUnprivilegedPortStart] = "0"
	}
	if _, set := out[sysctlPingGroupRange]; !set && r.unprivilegedICMP {
		// Every gid (written from the node's user namespace, so it covers the gids a
		// user-namespaced pod maps too).
		out[sysctlPingGroupRange] = "0 2147483647"
	}
	return out
}

// applySysctls writes the pod's sysctls inside its namespaces.
func applySysctls(sysctls map[string]string, paths map[namespace.Kind]string) error {
	names := make([]string, 0, len(sysctls))
	for n := range sysctls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		kind, _ := sysctlNamespace(name)
		value := sysctls[name]
		file := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
		err := namespace.Do(kind, paths[kind], func() error {
			return os.WriteFile(file, []byte(value), 0)
		})
		if os.IsNotExist(err) {
			return fmt.Errorf("sysctl %q is not known to this kernel: %w", name, errdefs.ErrInvalidArgument)
		}
		if errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("sysctl %s: the kernel refuses the value %q: %w", name, value, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return fmt.Errorf("set sysctl %s=%q: %w", name, value, err)
		}
	}
	return nil
}
