package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/runtime/namespace"
	"github.com/berth-runtime/berth/runtime/thread"
)

// cleanupTimeout bounds the rollback of a failed RunPodSandbox, which runs even when the
// request's context is gone.
const cleanupTimeout = time.Minute

// RunPodSandbox creates a pod: it pins the pod's namespaces, wires its network with CNI, applies
// its sysctls and writes its resolv.conf, hosts and hostname files. Any failure undoes what was
// done before the error is returned. It returns the sandbox id.
func (r *Runtime) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (_ string, retErr error) {
	if err := validateSandboxConfig(cfg, r.HandlerFeatures(handler).UserNamespaces); err != nil {
		return "", err
	}
	if err := r.waitLoaded(ctx); err != nil {
		return "", err
	}
	if handler == "" {
		handler = DefaultHandler
	}
	if !slices.Contains(r.Handlers(), handler) {
		return "", fmt.Errorf("runtime handler %q is not configured (configured: %s): %w", handler, strings.Join(r.Handlers(), ", "), errdefs.ErrInvalidArgument)
	}
	hostNet, hostIPC := hostNetwork(cfg), hostIPC(cfg)
	if err := checkSysctls(cfg.GetLinux().GetSysctls(), !hostNet, !hostIPC); err != nil {
		return "", err
	}

	// Not the named result: a failed return clears that before the rollback below reads id.
	id := newID()
	name := sandboxName(cfg.GetMetadata())
	if err := r.sandboxes.reserve(name, id); err != nil {
		return "", err
	}
	sb := &Sandbox{ID: id, Config: cfg, CreatedAt: time.Now(), Dir: r.sandboxDir(id), RuntimeHandler: handler, State: SandboxNotReady,
		OwnShim: r.ownShims, BootID: r.bootID}
	var undo []func(context.Context) error
	defer func() {
		if retErr == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](ctx); err != nil {
				r.log.Error("rolling back a failed pod sandbox left something behind", "sandbox", id, "pod", name, "error", err)
			}
		}
		r.sandboxes.release(name, id)
	}()

	// Root's only: the pod's /dev/shm (a world-writable tmpfs), its namespace pins and its
	// files are under it, and their paths are in every user's /proc/self/mountinfo
	// (containerd's GHSA-pwhc-rpq9-4c8w). runc, as root, mounts them from there.
	if err := os.MkdirAll(sb.Dir, 0o700); err != nil {
		return "", err
	}
	undo = append(undo, func(context.Context) error { return os.RemoveAll(sb.Dir) })

	hostname := podHostname(cfg)
	var kinds []namespace.Kind
	if !hostNet {
		kinds = append(kinds, namespace.Net, namespace.UTS)
	}
	if !hostIPC {
		kinds = append(kinds, namespace.IPC)
	}
	nsDir := filepath.Join(sb.Dir, "ns")
	nsPath := func(k namespace.Kind, want bool) string {
		if !want {
			return ""
		}
		return namespace.PinPath(nsDir, k)
	}
	// The namespaces' paths are in the record from the start: a berthd that dies during the CNI
	// ADD must give the plugins the pod's netns at the DEL, or they cannot find what to undo
	// (the bridge plugin leaves its masquerade rules behind).
	sb.NetNS, sb.UTS, sb.IPC = nsPath(namespace.Net, !hostNet), nsPath(namespace.UTS, !hostNet), nsPath(namespace.IPC, !hostIPC)

	// The record comes first, so that a berthd that dies from here on finds the pod at its next
	// start (NOTREADY) and can tear it down.
	steps := stepTimer{start: time.Now()}
	if err := r.createRecord(ctx, sb); err != nil {
		return "", err
	}
	steps.mark("record")
	undo = append(undo, func(ctx context.Context) error { return r.deleteRecord(ctx, id) })
	if err := r.cgroupParents.Join(cfg.GetLinux().GetCgroupParent()); err != nil {
		return "", fmt.Errorf("pod %s cgroup parent: %w", name, err)
	}
	undo = append(undo, func(ctx context.Context) error { r.removePodCgroups(ctx, sb); return nil })

	var (
		paths map[namespace.Kind]string
		err   error
	)
	if uids, gids, ok := podUserns(cfg); ok {
		paths, err = namespace.PinInUserns(nsDir, kinds, hostname, namespaceIDMaps(uids), namespaceIDMaps(gids), r.pauseBinary)
		sb.Userns = paths[namespace.User]
	} else {
		paths, err = namespace.Pin(nsDir, kinds, hostname)
	}
	if err != nil {
		return "", fmt.Errorf("pod %s namespaces: %w", name, err)
	}
	undo = append(undo, func(context.Context) error { return namespace.Unpin(nsDir) })
	steps.mark("namespaces")

	if err := applySysctls(r.podSysctls(cfg.GetLinux().GetSysctls(), !hostNet), paths); err != nil {
		return "", err
	}

	var ip string
	if !hostNet {
		pod := cniPod(sb)
		att, err := r.network.Setup(ctx, pod)
		if err != nil {
			return "", err
		}
		undo = append(undo, func(ctx context.Context) error { return r.network.Teardown(ctx, pod, att.Network) })
		sb.Network = att
		ip = att.IPs[0]
	}
	steps.mark("cni")
	filesDir := r.podFilesDir(sb)
	if filesDir != sb.Dir {
		if err := os.MkdirAll(filesDir, 0o700); err != nil {
			return "", err
		}
		undo = append(undo, func(context.Context) error { return os.RemoveAll(filesDir) })
	}
	if err := writePodFiles(filesDir, cfg, hostname, ip); err != nil {
		return "", err
	}
	if !hostIPC {
		uids, gids, _ := podUserns(cfg)
		if _, err := mountPodShm(sb.Dir, uids, gids); err != nil {
			return "", fmt.Errorf("pod %s: %w", name, err)
		}
		undo = append(undo, func(context.Context) error { return unmountPodShm(sb.Dir) })
	}
	steps.mark("files")

	// The pod's shim starts once the network is set up, not beside the CNI ADD: on this
	// project's 2-core reference node the two slowed each other down by more than the shim's
	// start takes alone (README, "Benchmark"). A pod that shares its PID namespace needs its
	// infra process, a task in that shim, before it is ready; any other pod's first task is
	// created a CreateContainer later, so its shim starts after RunPodSandbox returns.
	shared := sharesPID(cfg)
	if shared {
		if sb.OwnShim {
			r.prestartShimOrWarn(ctx, sb)
			undo = append(undo, func(ctx context.Context) error {
				r.releaseShim(ctx, sb, true)
				sb.closeShimLog()
				return nil
			})
		}
		undo = append(undo, func(ctx context.Context) error { return r.stopInfra(ctx, id) })
		var err error
		thread.Run(func() { sb.InfraPid, err = r.startInfra(ctx, sb) })
		if err != nil {
			return "", fmt.Errorf("pod %s: %w", name, err)
		}
		steps.mark("infra")
	}

	sb.State = SandboxReady
	if err := r.saveRecord(ctx, sb); err != nil {
		return "", err
	}
	steps.mark("save")
	if sb.OwnShim && !shared {
		// Held until the shim listens: the pod's first task, and its stop, wait for it.
		sb.shimMu.Lock()
		go func() {
			defer sb.shimMu.Unlock()
			thread.Run(func() { r.prestartShimOrWarn(context.WithoutCancel(ctx), sb) })
		}()
	}
	r.sandboxes.add(sb)
	r.emit(runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, sb.ID, sb)
	r.emit(runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, sb.ID, sb)
	r.log.Debug("pod sandbox ready", "sandbox", id, "pod", name, "ip", ip, "steps", steps.String())
	return id, nil
}

// validateSandboxConfig checks what every pod must have, naming the field that is wrong.
func validateSandboxConfig(cfg *runtimeapi.PodSandboxConfig, usernsSupported bool) error {
	md := cfg.GetMetadata()
	switch {
	case cfg == nil:
		return fmt.Errorf("config: missing: %w", errdefs.ErrInvalidArgument)
	case md == nil:
		return fmt.Errorf("config.metadata: missing: %w", errdefs.ErrInvalidArgument)
	case md.GetName() == "":
		return fmt.Errorf("config.metadata.name: empty: %w", errdefs.ErrInvalidArgument)
	case md.GetNamespace() == "":
		return fmt.Errorf("config.metadata.namespace: empty: %w", errdefs.ErrInvalidArgument)
	case md.GetUid() == "":
		return fmt.Errorf("config.metadata.uid: empty: %w", errdefs.ErrInvalidArgument)
	}
	if h := cfg.GetHostname(); len(h) > 64 {
		return fmt.Errorf("config.hostname: %q is longer than 64 characters: %w", h, errdefs.ErrInvalidArgument)
	} else if hasSpaceOrControl(h) {
		// Written into the pod's /etc/hosts and hostname files: a newline would add lines of
		// the pod's choosing (CRI-O's CVE-2022-4318).
		return fmt.Errorf("config.hostname: %q has white space or control characters: %w", h, errdefs.ErrInvalidArgument)
	}
	dns := cfg.GetDnsConfig()
	for field, values := range map[string][]string{"servers": dns.GetServers(), "searches": dns.GetSearches(), "options": dns.GetOptions()} {
		for _, v := range values {
			if v == "" || hasSpaceOrControl(v) {
				// Each is a word of a line of the pod's /etc/resolv.conf.
				return fmt.Errorf("config.dns_config.%s: %q is empty or has white space or control characters: %w", field, v, errdefs.ErrInvalidArgument)
			}
		}
	}
	if strings.ContainsAny(md.GetName()+md.GetNamespace()+md.GetUid(), "/\x00") {
		return fmt.Errorf("config.metadata: name, namespace and uid must not contain '/': %w", errdefs.ErrInvalidArgument)
	}
	return validateUserns(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions(), usernsSupported)
}

// podHostname is the hostname the pod's containers see: the configured one, else (and always
// on the host network) the node's, which a new UTS namespace starts with anyway.
func podHostname(cfg *runtimeapi.PodSandboxConfig) string {
	if h := cfg.GetHostname(); h != "" && !hostNetwork(cfg) {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// cniPod is what CNI is told about a sandbox.
func cniPod(sb *Sandbox) *cni.Pod {
	cfg := sb.Config
	md := cfg.GetMetadata()
	pod := &cni.Pod{ID: sb.ID, NetNS: sb.NetNS, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(),
		Annotations: cfg.GetAnnotations()}
	for _, pm := range cfg.GetPortMappings() {
		pod.PortMappings = append(pod.PortMappings, cni.PortMapping{
			HostPort: pm.GetHostPort(), ContainerPort: pm.GetContainerPort(),
			Protocol: strings.ToLower(pm.GetProtocol().String()), HostIP: pm.GetHostIp(),
		})
	}
	if dns := cfg.GetDnsConfig(); dns != nil {
		pod.DNS = &cni.DNS{Servers: dns.GetServers(), Searches: dns.GetSearches(), Options: dns.GetOptions()}
	}
	return pod
}

// deleteRecord removes a sandbox's containerd records; one that is gone already is no error.
func (r *Runtime) deleteRecord(ctx context.Context, id string) error {
	if err := r.client.ContainerService().Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete pod sandbox record %s: %w", id, err)
	}
	if err := r.client.SandboxStore().Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete pod sandbox record %s: %w", id, err)
	}
	return nil
}

// hasSpaceOrControl reports whether s has a white space or control character.
func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}
