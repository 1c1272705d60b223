package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/namespace"
	"github.com/berth-runtime/berth/test/daemon"
)

const (
	e2eNetwork = "berth-e2e"
	e2eBridge  = "berthe2e0"
	e2eSubnet  = "10.98.0.0/16"
)

// podNetwork writes a CNI config dir with the test network (extra plugins appended to its chain)
// and removes what the network leaves on the host when the test ends.
func podNetwork(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	conf := daemon.CNIConflist(e2eNetwork, e2eBridge, e2eSubnet)
	for _, p := range extra {
		conf = strings.Replace(conf, `{"type": "loopback"}`, `{"type": "loopback"}, `+p, 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "delete", e2eBridge).Run()
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", e2eNetwork))
	})
	return dir
}

var podCount int

// podConfig is a pod with its own namespaces (PID per container, as the kubelet's default).
func podConfig(name string) *runtimeapi.PodSandboxConfig {
	podCount++
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: fmt.Sprintf("uid-%s-%d", name, podCount)},
		Hostname: name,
		Labels:   map[string]string{"app": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

func runPod(t *testing.T, d *daemon.Daemon, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	resp, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox(%s): %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.PodSandboxId
}

func podStatus(t *testing.T, d *daemon.Daemon, id string) *runtimeapi.PodSandboxStatus {
	t.Helper()
	resp, err := d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus(%s): %v", id, err)
	}
	return resp.Status
}

// serveInPod listens on port inside the network namespace at netns and answers "pod".
func serveInPod(t *testing.T, netns string, port int) {
	t.Helper()
	var l net.Listener
	err := namespace.Do(namespace.Net, netns, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("pod"))
			c.Close()
		}
	}()
}

func expectAnswer(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("dial %s: %v", addr, err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3)
	if _, err := c.Read(buf); err != nil || string(buf) != "pod" {
		t.Errorf("%s answered %q, %v", addr, buf, err)
	}
}

func hostIPv4(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !strings.HasPrefix(n.IP.String(), "10.98.") {
			return n.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address")
	return ""
}

func inPodNS(t *testing.T, kind namespace.Kind, path string, fn func() error) {
	t.Helper()
	if err := namespace.Do(kind, path, fn); err != nil {
		t.Error(err)
	}
}

func TestPodSandboxLifecycle(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	cfg := podConfig("web")
	cfg.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.10.10.10"}, Searches: []string{"e2e.svc"}, Options: []string{"ndots:5"}}
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 18081}}
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "1000"}
	id := runPod(t, d, cfg)

	st := podStatus(t, d, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Metadata.Name != "web" || st.Labels["app"] != "web" {
		t.Fatalf("status = %v", st)
	}
	ip := net.ParseIP(st.GetNetwork().GetIp())
	if _, subnet, _ := net.ParseCIDR(e2eSubnet); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q, want one in %s", st.GetNetwork().GetIp(), e2eSubnet)
	}
	podDir := filepath.Join(d.State, "pods", id)
	netns := filepath.Join(podDir, "ns", "net")

	// The pod's world, seen from the host and from inside its namespaces.
	serveInPod(t, netns, 8080)
	expectAnswer(t, net.JoinHostPort(ip.String(), "8080"))
	expectAnswer(t, hostIPv4(t)+":18081")
	inPodNS(t, namespace.UTS, filepath.Join(podDir, "ns", "uts"), func() error {
		if h, _ := os.Hostname(); h != "web" {
			return fmt.Errorf("hostname in the pod = %q, want web", h)
		}
		return nil
	})
	inPodNS(t, namespace.Net, netns, func() error {
		if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); strings.TrimSpace(string(b)) != "0" {
			return fmt.Errorf("net sysctl in the pod = %q, want 0", b)
		}
		return nil
	})
	inPodNS(t, namespace.IPC, filepath.Join(podDir, "ns", "ipc"), func() error {
		if b, _ := os.ReadFile("/proc/sys/kernel/shmmni"); strings.TrimSpace(string(b)) != "1000" {
			return fmt.Errorf("ipc sysctl in the pod = %q, want 1000", b)
		}
		return nil
	})
	if b, _ := os.ReadFile("/proc/sys/kernel/shmmni"); strings.TrimSpace(string(b)) == "1000" {
		t.Error("the pod's IPC sysctl changed the node")
	}
	resolv, _ := os.ReadFile(filepath.Join(podDir, "resolv.conf"))
	for _, want := range []string{"nameserver 10.10.10.10", "search e2e.svc", "options ndots:5"} {
		if !strings.Contains(string(resolv), want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if h, _ := os.ReadFile(filepath.Join(podDir, "hostname")); string(h) != "web\n" {
		t.Errorf("hostname file = %q", h)
	}
	if hosts, _ := os.ReadFile(filepath.Join(podDir, "hosts")); !strings.Contains(string(hosts), ip.String()+"\tweb") {
		t.Errorf("hosts file lacks the pod's own name:\n%s", hosts)
	}

	// Verbose status says where the namespace is and what CNI gave.
	resp, err := d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil || !strings.Contains(resp.Info["info"], netns) || !strings.Contains(resp.Info["info"], "cniResult") {
		t.Errorf("verbose status info = %v, %v", resp.GetInfo(), err)
	}

	// A second pod of the same name and attempt is refused.
	if _, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("second RunPodSandbox with the same name = %v, want AlreadyExists", err)
	}

	// Stop: network and namespaces go; stopping again is fine.
	for range 2 {
		if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
	}
	if st := podStatus(t, d, id); st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("state after stop = %v", st.State)
	}
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("network namespace pin still there after stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/var/lib/cni/networks", e2eNetwork, ip.String())); !os.IsNotExist(err) {
		t.Errorf("IP reservation still there after stop: %v", err)
	}
	if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), id) {
		t.Errorf("iptables rules of the pod left after stop")
	}

	// Remove: files and record go; removing again, and stopping or removing an unknown pod, is fine.
	for range 2 {
		if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod directory still there after remove: %v", err)
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a removed pod = %v, want NotFound", err)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: "nonexistent"}); err != nil {
		t.Errorf("StopPodSandbox of an unknown pod: %v", err)
	}
	// The name is free again.
	id2 := runPod(t, d, cfg)
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id2}); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), filepath.Join(d.State, "pods")) {
		t.Error("namespace pins left mounted")
	}
}

func TestRunPodSandboxRejectsBadConfig(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	noMeta := podConfig("x")
	noMeta.Metadata = nil
	noName := podConfig("x")
	noName.Metadata.Name = ""
	badSysctl := podConfig("x")
	badSysctl.Linux.Sysctls = map[string]string{"kernel.panic": "1"}
	hostNetSysctl := podConfig("x")
	hostNetSysctl.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	hostNetSysctl.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	unknownSysctl := podConfig("x")
	unknownSysctl.Linux.Sysctls = map[string]string{"net.ipv4.no_such_thing": "1"}
	longHostname := podConfig("x")
	longHostname.Hostname = strings.Repeat("h", 65)
	badBandwidth := podConfig("x")
	badBandwidth.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "lots"}
	tests := []struct {
		desc    string
		cfg     *runtimeapi.PodSandboxConfig
		handler string
		want    string
	}{
		{"no metadata", noMeta, "", "config.metadata"},
		{"no name", noName, "", "config.metadata.name"},
		{"unknown handler", podConfig("x"), "kata", `runtime handler "kata"`},
		{"node-wide sysctl", badSysctl, "", `sysctl "kernel.panic" is not namespaced`},
		{"net sysctl on host network", hostNetSysctl, "", "needs the pod's own net namespace"},
		{"unknown sysctl", unknownSysctl, "", "not known to this kernel"},
		{"bad bandwidth", badBandwidth, "", "kubernetes.io/ingress-bandwidth"},
		{"hostname too long", longHostname, "", "config.hostname"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			_, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: test.cfg, RuntimeHandler: test.handler})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), test.want) {
				t.Errorf("RunPodSandbox = %v, want InvalidArgument naming %q", err, test.want)
			}
		})
	}
	assertNoPods(t, d)
}

// assertNoPods checks that berth holds no pod and left none of their traces on the host.
func assertNoPods(t *testing.T, d *daemon.Daemon) {
	t.Helper()
	list, err := d.Runtime.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("ListPodSandbox = %v, %v; want no pods", list, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.State, "pods")); len(entries) != 0 {
		t.Errorf("pod directories left: %d", len(entries))
	}
	if entries, _ := os.ReadDir(filepath.Join("/var/lib/cni/networks", e2eNetwork)); len(entries) > 2 { // last_reserved_ip, lock
		t.Errorf("IP reservations left: %v", entries)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), filepath.Join(d.State, "pods")) {
		t.Error("namespace pins left mounted")
	}
}

func TestFailedCNIAddIsRolledBack(t *testing.T) {
	binDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(binDir, "failing"), []byte("#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && { echo '{\"code\":100,\"msg\":\"injected failure\"}'; exit 1; }\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A pod that shares its PID namespace starts its infra process beside the CNI ADD: the
	// rollback stops it too.
	for _, pid := range []runtimeapi.NamespaceMode{runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD} {
		t.Run(pid.String(), func(t *testing.T) {
			confDir := podNetwork(t, `{"type": "failing"}`)
			d := startDaemon(t, "--cni-conf-dir", confDir, "--cni-bin-dirs", "/opt/cni/bin,"+binDir)
			cfg := podConfig("doomed")
			cfg.Linux.SecurityContext.NamespaceOptions.Pid = pid
			_, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("RunPodSandbox with a failing plugin = %v", err)
			}
			assertNoPods(t, d)
			if n := infraProcesses(d); n != 0 {
				t.Errorf("%d infra processes left", n)
			}
			// The name was released: with the plugin fixed the same pod runs.
			os.WriteFile(filepath.Join(confDir, "10-e2e.conflist"), []byte(daemon.CNIConflist(e2eNetwork, e2eBridge, e2eSubnet)), 0o644)
			id := runPod(t, d, cfg)
			if want := map[runtimeapi.NamespaceMode]int{runtimeapi.NamespaceMode_POD: 1}[pid]; infraProcesses(d) != want {
				t.Errorf("running pod has %d infra processes, want %d", infraProcesses(d), want)
			}
			d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			assertNoPods(t, d)
		})
	}
}

// infraProcesses counts the infra processes of d's pods: the live children of d's shims (pods
// here run no containers). Not by name: an infra process whose execve of /pause is still under
// way (runc start has returned by then) is named as runc's until it is done.
func infraProcesses(d *daemon.Daemon) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil || strings.Contains(string(status), "State:\tZ") {
			continue
		}
		_, rest, _ := strings.Cut(string(status), "PPid:")
		ppid := strings.Fields(rest)
		if len(ppid) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", ppid[0], "comm"))
		cmd, _ := os.ReadFile(filepath.Join("/proc", ppid[0], "cmdline"))
		if strings.HasPrefix(string(comm), "containerd-shim") && strings.Contains(string(cmd), d.State) {
			n++
		}
	}
	return n
}

func TestHostNetworkPod(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	cfg := podConfig("hostnet")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	id := runPod(t, d, cfg)
	podDir := filepath.Join(d.State, "pods", id)
	if _, err := os.Stat(filepath.Join(podDir, "ns", "net")); !os.IsNotExist(err) {
		t.Errorf("host-network pod has a network namespace of its own")
	}
	host, _ := os.Hostname()
	if h, _ := os.ReadFile(filepath.Join(podDir, "hostname")); string(h) != host+"\n" {
		t.Errorf("host-network pod hostname = %q, want the node's %q", h, host)
	}
	nodeHosts, _ := os.ReadFile("/etc/hosts")
	if h, _ := os.ReadFile(filepath.Join(podDir, "hosts")); string(h) != string(nodeHosts) {
		t.Errorf("host-network pod hosts file is not the node's")
	}
	if st := podStatus(t, d, id); st.GetNetwork() != nil {
		t.Errorf("host-network pod reports network %v", st.GetNetwork())
	}
	d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	assertNoPods(t, d)
}

func TestListPodSandboxFilters(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	a, b := runPod(t, d, podConfig("alpha")), runPod(t, d, podConfig("beta"))
	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: b}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc   string
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}{
		{"all", nil, []string{a, b}},
		{"id", &runtimeapi.PodSandboxFilter{Id: a}, []string{a}},
		{"id prefix", &runtimeapi.PodSandboxFilter{Id: b[:12]}, []string{b}},
		{"ready", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}, []string{a}},
		{"not ready", &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}, []string{b}},
		{"labels", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "beta"}}, []string{b}},
		{"labels none", &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "gamma"}}, nil},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			resp, err := d.Runtime.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: test.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range resp.Items {
				got = append(got, p.Id)
			}
			if fmt.Sprint(got) != fmt.Sprint(test.want) {
				t.Errorf("ListPodSandbox(%v) = %v, want %v", test.filter, got, test.want)
			}
		})
	}
	for _, id := range []string{a, b} {
		d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	}
}

func TestPodsSurviveABerthdRestart(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	id := runPod(t, d, podConfig("survivor"))
	ip := podStatus(t, d, id).GetNetwork().GetIp()
	if err := d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	st := podStatus(t, d, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.GetNetwork().GetIp() != ip {
		t.Fatalf("after a restart: %v, want READY with IP %s", st, ip)
	}
	if _, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("survivor")}); err != nil {
		// A different uid: a different pod. (Same name and attempt would be AlreadyExists.)
		t.Logf("second pod: %v", err)
	}
	list, _ := d.Runtime.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	for _, p := range list.Items {
		if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Fatalf("RemovePodSandbox after restart: %v", err)
		}
	}
	assertNoPods(t, d)
}

// TestSharedPIDNamespaceRunsAnInfraProcess: a pod whose containers share a PID namespace gets
// berth-pause as PID 1 of it, in the pod's other namespaces, in one shim; stop takes both away.
func TestSharedPIDNamespaceRunsAnInfraProcess(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	cfg := podConfig("shared-pid")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	id := runPod(t, d, cfg)
	resp, err := d.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid   int    `json:"pid"`
		NetNS string `json:"netns"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("verbose status has no infra pid: %v %v", resp.Info, err)
	}
	// runc start returns once the process is let go, before its execve is done: for that moment
	// its command line reads empty (or as runc's). The pid is the pod's PID 1 either way.
	var cmdline []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", info.Pid))
		if string(cmdline) == "/pause\x00" || time.Now().After(deadline) {
			break
		}
	}
	if string(cmdline) != "/pause\x00" {
		t.Errorf("infra process runs %q, want /pause", cmdline)
	}
	same := func(a, b string) bool {
		var sa, sb syscall.Stat_t
		return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Ino == sb.Ino && sa.Dev == sb.Dev
	}
	if !same(fmt.Sprintf("/proc/%d/ns/net", info.Pid), info.NetNS) {
		t.Error("infra process is not in the pod's network namespace")
	}
	if same(fmt.Sprintf("/proc/%d/ns/pid", info.Pid), "/proc/self/ns/pid") {
		t.Error("infra process is in the node's PID namespace")
	}
	if shims := processesWith(id); len(shims) != 1 {
		t.Errorf("%d shims for the pod, want 1", len(shims))
	}

	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if processAlive(info.Pid) {
		t.Error("infra process alive after StopPodSandbox")
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(processesWith(id)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if shims := processesWith(id); len(shims) != 0 {
		t.Errorf("shim left after RemovePodSandbox: pids %v", shims)
	}
	assertNoPods(t, d)
}

// processesWith lists the processes whose command line mentions s.
func processesWith(s string) []int { return processesWhose("cmdline", s) }

// processesWhose lists the processes (this test's aside) whose /proc/<pid>/<file> mentions s.
func processesWhose(file, s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), file)); err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}
