package cni

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-runtime/berth/runtime/namespace"
)

func TestBandwidth(t *testing.T) {
	tests := []struct {
		desc    string
		ann     map[string]string
		want    *bandwidthLimits
		wantErr bool
	}{
		{desc: "none", ann: nil, want: nil},
		{desc: "ingress", ann: map[string]string{ingressBandwidth: "10M"}, want: &bandwidthLimits{IngressRate: 10_000_000, IngressBurst: unlimitedBurst}},
		{desc: "both", ann: map[string]string{ingressBandwidth: "1Mi", egressBandwidth: "2G"},
			want: &bandwidthLimits{IngressRate: 1 << 20, IngressBurst: unlimitedBurst, EgressRate: 2_000_000_000, EgressBurst: unlimitedBurst}},
		{desc: "garbage", ann: map[string]string{egressBandwidth: "fast"}, wantErr: true},
		{desc: "zero", ann: map[string]string{egressBandwidth: "0"}, wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got, err := bandwidth(test.ann)
			if (err != nil) != test.wantErr {
				t.Fatalf("bandwidth(%v) error = %v", test.ann, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(test.want) {
				t.Errorf("bandwidth(%v) = %+v, want %+v", test.ann, got, test.want)
			}
		})
	}
}

// inNetNS runs fn on a thread in the network namespace at path.
func inNetNS(t *testing.T, path string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// TestSetupAndTeardownWithRealPlugins wires a pinned network namespace with the bridge,
// host-local, portmap and loopback plugins and checks the host before and after.
func TestSetupAndTeardownWithRealPlugins(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root and the CNI plugins (hack/install-deps.sh); CI runs it")
	}
	const name, bridge, subnet = "berth-cni-test", "berthcnit0", "10.123.0.0/24"
	confDir, cacheDir := t.TempDir(), t.TempDir()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}]}},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"loopback"}]}`, name, bridge, subnet)
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "delete", bridge).Run()
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", name))
	})
	network := NewNetwork(NewConfig(confDir, []string{"/opt/cni/bin"}), cacheDir)

	nsDir := filepath.Join(t.TempDir(), "ns")
	paths, err := namespace.Pin(nsDir, []namespace.Kind{namespace.Net}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer namespace.Unpin(nsDir)
	pod := &Pod{ID: "cnitest0123456789", NetNS: paths[namespace.Net], Name: "web", Namespace: "default", UID: "uid-1",
		PortMappings: []PortMapping{{HostPort: 18080, ContainerPort: 8080, Protocol: "tcp"}}}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	att, err := network.Setup(ctx, pod)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ip := net.ParseIP(att.IPs[0])
	if _, ipnet, _ := net.ParseCIDR(subnet); ip == nil || !ipnet.Contains(ip) || att.Network != name {
		t.Fatalf("attachment = %+v, want an address in %s on %s", att, subnet, name)
	}

	// A server in the pod answers on its IP and through the host port.
	var l net.Listener
	inNetNS(t, pod.NetNS, func() { l, err = net.Listen("tcp", ":8080") })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
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
	for _, addr := range []string{net.JoinHostPort(ip.String(), "8080"), hostIP(t) + ":18080"} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Errorf("dial %s: %v", addr, err)
			continue
		}
		buf := make([]byte, 3)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Read(buf)
		c.Close()
		if string(buf) != "pod" {
			t.Errorf("%s answered %q", addr, buf)
		}
	}

	if err := network.Teardown(ctx, pod, name); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/var/lib/cni/networks", name, ip.String())); !os.IsNotExist(err) {
		t.Errorf("IP reservation of %s still there: %v", ip, err)
	}
	if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), pod.ID) {
		t.Errorf("iptables rules of the pod are left:\n%s", grepLines(string(out), pod.ID))
	}
	if err := network.Teardown(ctx, pod, name); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	// After the config is gone, teardown still works from the cache.
	os.Remove(filepath.Join(confDir, "10-test.conflist"))
	if err := network.Teardown(ctx, pod, name); err != nil {
		t.Errorf("Teardown without config: %v", err)
	}
}

func TestFailedSetupIsRolledBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root and the CNI plugins (hack/install-deps.sh); CI runs it")
	}
	const name, bridge, subnet = "berth-cni-fail", "berthcnif0", "10.124.0.0/24"
	confDir, binDir := t.TempDir(), t.TempDir()
	// A plugin that fails ADD after bridge and host-local have done their part.
	if err := os.WriteFile(filepath.Join(binDir, "failing"), []byte("#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && { echo '{\"code\":100,\"msg\":\"injected failure\"}'; exit 1; }\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
		{"type":"bridge","bridge":%q,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]]}},
		{"type":"failing"}]}`, name, bridge, subnet)
	if err := os.WriteFile(filepath.Join(confDir, "10-fail.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "delete", bridge).Run()
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", name))
	})
	network := NewNetwork(NewConfig(confDir, []string{"/opt/cni/bin", binDir}), t.TempDir())
	nsDir := filepath.Join(t.TempDir(), "ns")
	paths, err := namespace.Pin(nsDir, []namespace.Kind{namespace.Net}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer namespace.Unpin(nsDir)
	_, err = network.Setup(context.Background(), &Pod{ID: "failtest0123", NetNS: paths[namespace.Net], Name: "x", Namespace: "y", UID: "z"})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Setup = %v, want the plugin's failure", err)
	}
	entries, _ := os.ReadDir(filepath.Join("/var/lib/cni/networks", name))
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			t.Errorf("failed ADD left IP reservation %s", e.Name())
		}
	}
}

// hostIP is an address of this host that portmap forwards from (not loopback, which needs
// route_localnet in the caller's namespace).
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !strings.HasPrefix(n.IP.String(), "10.12") {
			return n.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address on this host")
	return ""
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
