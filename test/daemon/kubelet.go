package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KubeBinDir is where hack/install-deps.sh puts the kubelet (and make node-e2e the node e2e
// suite): $KUBE_BIN_DIR, else /opt/berth/kube.
func KubeBinDir() string {
	if d := os.Getenv("KUBE_BIN_DIR"); d != "" {
		return d
	}
	return "/opt/berth/kube"
}

// Kubelet is a standalone kubelet (no API server: static pods only) started by StartKubelet,
// with its root, pod logs and manifests in a temporary directory.
type Kubelet struct {
	// Dir holds Root, Manifests, PodLogs, the config and the kubelet's log.
	Dir                      string
	Root, Manifests, PodLogs string
	// NodeName is the node's name; a static pod NAME is the kubelet's pod NAME-NodeName.
	NodeName string
	// Port serves the kubelet's API (HTTPS, anonymous and allowed: tests only).
	Port int

	cmd    *exec.Cmd
	done   chan struct{}
	logs   *SyncBuffer
	client *http.Client
	// hostBefore is what the kubelet may add to the node outside its directory (iptables chains,
	// /var/lib/kubelet), as it was before the start, for Cleanup.
	hostBefore HostState
}

// KubeletOptions configure StartKubelet.
type KubeletOptions struct {
	// Endpoint is the CRI endpoint (unix:///...).
	Endpoint string
	// NodeName defaults to "berth-node".
	NodeName string
	// Args are added to the kubelet's command line.
	Args []string
}

// KubeletNodeConfig is the part of a kubelet's configuration this kind of machine needs:
// cgroupfs on cgroup v1 (hybrid) without systemd (the kubelet then needs cgroupRoot /), swap
// allowed, no local storage isolation, eviction thresholds a small VM meets, and image GC that
// never removes a test's images.
const KubeletNodeConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /
failCgroupV1: false
failSwapOn: false
localStorageCapacityIsolation: false
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`

// kubeletConfig adds a standalone test kubelet's own: the runtime, static pods checked every
// second, the API on loopback with anonymous access allowed (a test node), parallel pulls.
const kubeletConfig = `containerRuntimeEndpoint: %[1]s
imageServiceEndpoint: %[1]s
staticPodPath: %[2]s
podLogsDir: %[3]s
fileCheckFrequency: 1s
syncFrequency: 5s
address: 127.0.0.1
port: %[4]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[5]d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
serializeImagePulls: false
`

// StartKubelet starts the kubelet from KubeBinDir and waits until its health endpoint answers.
func StartKubelet(opts KubeletOptions) (*Kubelet, error) {
	bin := filepath.Join(KubeBinDir(), "kubelet")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no kubelet at %s: run hack/install-deps.sh", bin)
	}
	dir, err := os.MkdirTemp("", "kubelet-")
	if err != nil {
		return nil, err
	}
	k := &Kubelet{Dir: dir, Root: filepath.Join(dir, "root"), Manifests: filepath.Join(dir, "manifests"),
		PodLogs: filepath.Join(dir, "pods"), NodeName: opts.NodeName, logs: &SyncBuffer{}, done: make(chan struct{})}
	if k.NodeName == "" {
		k.NodeName = "berth-node"
	}
	for _, d := range []string{k.Root, k.Manifests, k.PodLogs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	k.Port = ports[0]
	cfg := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf([]byte(KubeletNodeConfig), kubeletConfig, opts.Endpoint, k.Manifests, k.PodLogs, ports[0], ports[1]), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "kubelet.log"))
	if err != nil {
		return nil, err
	}
	args := append([]string{"--config", cfg, "--root-dir", k.Root, "--cert-dir", filepath.Join(k.Root, "pki"),
		"--hostname-override", k.NodeName, "--v", "2"}, opts.Args...)
	k.hostBefore = ReadHostState()
	k.cmd = exec.Command(bin, args...)
	k.cmd.Stdout = logFile
	k.cmd.Stderr = &teeWriter{logFile, k.logs}
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := k.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		k.cmd.Wait()
		logFile.Close()
		close(k.done)
	}()
	k.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		// The kubelet serves a certificate it made itself.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback test node
	}}
	healthz := fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[1])
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-k.done:
			return k, fmt.Errorf("kubelet exited: %v\n%s", k.cmd.ProcessState, tail(k.Logs(), 4000))
		default:
		}
		if resp, err := http.Get(healthz); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return k, nil
			}
		}
		if time.Now().After(deadline) {
			return k, fmt.Errorf("kubelet not healthy within 90s\n%s", tail(k.Logs(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Logs returns what the kubelet has logged.
func (k *Kubelet) Logs() string { return k.logs.String() }

// URL is the kubelet API's address for path.
func (k *Kubelet) URL(path string) string { return fmt.Sprintf("https://127.0.0.1:%d%s", k.Port, path) }

// Get fetches path from the kubelet's API.
func (k *Kubelet) Get(ctx context.Context, path string) (string, error) {
	return k.do(ctx, http.MethodGet, path)
}

// Post posts to path of the kubelet's API (with no body), as its checkpoint endpoint takes.
func (k *Kubelet) Post(ctx context.Context, path string) (string, error) {
	return k.do(ctx, http.MethodPost, path)
}

func (k *Kubelet) do(ctx context.Context, method, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, k.URL(path), nil)
	if err != nil {
		return "", err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return string(b), err
}

// AddPod writes a static pod manifest; the kubelet picks it up within a second.
func (k *Kubelet) AddPod(name, manifest string) error {
	tmp := filepath.Join(k.Dir, name+".yaml.tmp")
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(k.Manifests, name+".yaml"))
}

// RemovePod removes a static pod's manifest: the kubelet stops and removes the pod.
func (k *Kubelet) RemovePod(name string) error {
	return os.Remove(filepath.Join(k.Manifests, name+".yaml"))
}

// Stop stops the kubelet (SIGTERM, then SIGKILL after 10 s). The pods it ran keep running, as
// with any kubelet; remove them first.
func (k *Kubelet) Stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
}

// Cleanup stops the kubelet, unmounts what it mounted under its directory (volumes), removes
// the directory and the cgroups it made for pods (/kubepods in each hierarchy) when empty, and
// takes back what it added to the node: its iptables chains and /var/lib/kubelet (the device
// plugin socket's fixed place).
func (k *Kubelet) Cleanup() {
	k.Stop()
	unmountUnder(k.Dir)
	os.RemoveAll(k.Dir)
	k.hostBefore.Restore()
}

// HostState is what a kubelet adds to the node outside its root directory, as it was before the
// kubelet started: ReadHostState before, Restore after.
type HostState struct {
	// chains are the iptables and ip6tables chains, "iptables/filter/KUBE-FIREWALL".
	chains map[string]bool
	// varLibKubelet says /var/lib/kubelet was there.
	varLibKubelet bool
	// cgroups are the kubelet's cgroups (kubeletCgroups) that were there.
	cgroups map[string]bool
}

// ReadHostState records the node's iptables chains and whether /var/lib/kubelet is there.
func ReadHostState() HostState {
	h := HostState{chains: map[string]bool{}}
	for _, c := range iptablesChains() {
		h.chains[c] = true
	}
	_, err := os.Stat("/var/lib/kubelet")
	h.varLibKubelet = err == nil
	h.cgroups = map[string]bool{}
	for _, d := range kubeletCgroups() {
		h.cgroups[d] = true
	}
	return h
}

// iptablesChains lists the KUBE-* chains as "command/table/chain".
func iptablesChains() []string {
	var out []string
	for _, cmd := range []string{"iptables", "ip6tables"} {
		b, err := exec.Command(cmd + "-save").Output()
		if err != nil {
			continue
		}
		table := ""
		for _, l := range strings.Split(string(b), "\n") {
			if t, ok := strings.CutPrefix(l, "*"); ok {
				table = t
			}
			if c, ok := strings.CutPrefix(l, ":KUBE-"); ok {
				out = append(out, cmd+"/"+table+"/KUBE-"+strings.Fields(c)[0])
			}
		}
	}
	return out
}

// Restore takes back what a kubelet (stopped by now) added: the KUBE-* chains that were not there
// before (and the built-in chains' jumps to them), the mounts under /var/lib/kubelet and the
// directory itself if it was not there, and the empty cgroups the kubelet makes for pods and
// itself (kubepods, and the node e2e suite's system and kubelet).
func (h HostState) Restore() {
	for _, d := range kubeletCgroups() {
		if !h.cgroups[d] {
			removeCgroupTree(d)
		}
	}
	for _, c := range iptablesChains() {
		if h.chains[c] {
			continue
		}
		parts := strings.SplitN(c, "/", 3)
		cmd, table, chain := parts[0], parts[1], parts[2]
		for _, builtin := range []string{"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"} {
			for exec.Command(cmd, "-t", table, "-D", builtin, "-j", chain).Run() == nil {
			}
		}
		exec.Command(cmd, "-t", table, "-F", chain).Run()
		exec.Command(cmd, "-t", table, "-X", chain).Run()
	}
	unmountUnder("/var/lib/kubelet")
	if !h.varLibKubelet {
		os.RemoveAll("/var/lib/kubelet")
	}
}

// kubeletCgroups lists the cgroups a kubelet makes in each hierarchy: kubepods for pods, and with
// the node e2e suite's flags /system (where it moves the node's other processes) and /kubelet.
func kubeletCgroups() []string {
	var out []string
	for _, name := range []string{"kubepods", "system", "kubelet"} {
		found, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
		out = append(out, found...)
		if _, err := os.Stat("/sys/fs/cgroup/" + name); err == nil {
			out = append(out, "/sys/fs/cgroup/"+name)
		}
	}
	return out
}

// removeCgroupTree moves the processes of cgroup root and below back to the hierarchy's root (the
// kubelet moved them there) and removes the cgroups, deepest first.
func removeCgroupTree(root string) {
	var dirs []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	top := filepath.Dir(root)
	for i := len(dirs) - 1; i >= 0; i-- {
		if b, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(top, "cgroup.procs"), []byte(pid), 0o644)
			}
		}
		syscall.Rmdir(dirs[i])
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		port, _ := strconv.Atoi(p)
		ports = append(ports, port)
	}
	return ports, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := strings.IndexByte(s[len(s)-n:], '\n')
	return s[len(s)-n+i+1:]
}
