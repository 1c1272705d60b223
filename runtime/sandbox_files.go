package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/namespace"
)

// The files a pod gives its containers, in its directory.
const (
	resolvConfFile = "resolv.conf"
	hostsFile      = "hosts"
	hostnameFile   = "hostname"
)

// hostResolvConf and hostHosts are the node's files that host-network pods (and pods without DNS
// config) get.
var (
	hostResolvConf = "/etc/resolv.conf"
	hostHosts      = "/etc/hosts"
)

// resolvConf renders the pod's resolv.conf: its DNS config when it has one, else the node's.
func resolvConf(dns *runtimeapi.DNSConfig) ([]byte, error) {
	if len(dns.GetServers()) == 0 && len(dns.GetSearches()) == 0 && len(dns.GetOptions()) == 0 {
		b, err := os.ReadFile(hostResolvConf)
		if os.IsNotExist(err) {
			return nil, nil
		}
		return b, err
	}
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return []byte(b.String()), nil
}

// hostsContent renders the pod's /etc/hosts: the node's for host-network pods, else localhost
// and the pod's own name on its IP.
func hostsContent(hostNet bool, hostname, ip string) ([]byte, error) {
	if hostNet {
		return os.ReadFile(hostHosts)
	}
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if ip != "" && hostname != "" {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return []byte(b.String()), nil
}

// podFilesDir is where a pod's resolv.conf, hosts and hostname are: its directory, or, for a
// pod with a user namespace of its own, its directory under berth's root. Those are idmapped
// into the pod, and tmpfs, where the state directory (/run) is, takes idmapped mounts only from
// Linux 6.3: on Debian 12's 6.1 every such pod failed to start (found by make vm-test's critest;
// containerd, whose files are under its root, ran them).
func (r *Runtime) podFilesDir(sb *Sandbox) string {
	if sb.Userns == "" || r.rootDir == "" {
		return sb.Dir
	}
	return filepath.Join(r.rootDir, "pods", sb.ID)
}

// removeOrphanedPodFiles removes the directories of pods that have no record: a berthd killed
// inside RunPodSandbox after it made the pod's directory (and perhaps pinned its namespaces and
// mounted its /dev/shm) and before it wrote the record. Their namespaces are unpinned and their
// /dev/shm unmounted first: the pod's network was not set up yet, the record comes before it.
// Load runs it, before any call is served.
func (r *Runtime) removeOrphanedPodFiles(known map[string]bool) {
	for _, dir := range []string{filepath.Join(r.stateDir, "pods"), filepath.Join(r.rootDir, "pods")} {
		if dir == "pods" { // no root directory (tests)
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if known[e.Name()] {
				continue
			}
			podDir := filepath.Join(dir, e.Name())
			err := errors.Join(namespace.Unpin(filepath.Join(podDir, "ns")), unmountPodShm(podDir))
			if err == nil {
				err = os.RemoveAll(podDir)
			}
			if err != nil {
				r.log.Warn("cannot remove the directory of a pod that has no record", "sandbox", e.Name(), "dir", podDir, "error", err)
			} else {
				r.log.Info("removed the directory of a pod that has no record", "sandbox", e.Name(), "dir", podDir)
			}
		}
	}
}

// writePodFiles writes resolv.conf, hosts and hostname into the pod's directory.
func writePodFiles(dir string, cfg *runtimeapi.PodSandboxConfig, hostname, ip string) error {
	resolv, err := resolvConf(cfg.GetDnsConfig())
	if err != nil {
		return fmt.Errorf("pod resolv.conf: %w", err)
	}
	hosts, err := hostsContent(hostNetwork(cfg), hostname, ip)
	if err != nil {
		return fmt.Errorf("pod hosts file: %w", err)
	}
	for name, content := range map[string][]byte{
		resolvConfFile: resolv, hostsFile: hosts, hostnameFile: []byte(hostname + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return err
		}
	}
	return nil
}
