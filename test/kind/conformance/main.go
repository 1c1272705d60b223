// Command conformance runs Kubernetes' e2e suite (k8s.io/kubernetes/test/e2e at
// KUBERNETES_VERSION, e2e.test built by hack/install-kind.sh --conformance) against the kind
// cluster of make kind-up, the way Kubernetes tests a runtime: the [Conformance] specs, from the
// host, through the cluster's kubeconfig. The suite's images are built here (test/images) and
// served by a registry on the kind network's gateway, which every node reaches through its
// runtime's hosts.toml mirrors (berth's /etc/berth/certs.d, containerd's /etc/containerd/certs.d):
// specs with imagePullPolicy Always need a registry, not a preload.
//
// agnhost's images are over a Debian root file system with the network tools the real image has
// (hack/install-kind.sh --conformance makes it), since the specs run them with options busybox's
// applets do not take.
//
// It keeps score as the other suites do: for berth's cluster every spec in expected-pass.txt
// must pass, and skip.txt lists the specs left out on purpose, each with its reason; for
// containerd's (CRI=containerd) the count is the comparison. It prints
// "conformance: N passed, N failed, N skipped".
//
// Environment: CRI (berth or containerd), KIND_CLUSTER and KIND_KUBECONFIG (as make kind-up),
// CONFORMANCE_FOCUS (default \[Conformance\]), CONFORMANCE_PROCS (parallel ginkgo processes,
// default 4), CONFORMANCE_TIMEOUT (default 3h), CONFORMANCE_REPORT (default bin/conformance-<CRI>).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/ratchet"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run() (int, error) {
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		return 0, err
	}
	here := filepath.Join(moduleDir, "test", "kind", "conformance")
	cri := daemon.EnvOr("CRI", "berth")
	cluster := daemon.EnvOr("KIND_CLUSTER", cri)
	kubeconfig := daemon.EnvOr("KIND_KUBECONFIG", filepath.Join(moduleDir, "bin", "kind", cluster+".kubeconfig"))
	report := daemon.EnvOr("CONFORMANCE_REPORT", filepath.Join(moduleDir, "bin", "conformance-"+cri))
	focus := daemon.EnvOr("CONFORMANCE_FOCUS", `\[Conformance\]`)
	procs := daemon.EnvOr("CONFORMANCE_PROCS", "4")
	timeout := daemon.EnvOr("CONFORMANCE_TIMEOUT", "3h")

	skips, err := ratchet.ReadSkips(filepath.Join(here, "skip.txt"))
	if err != nil {
		return 0, err
	}
	expected, err := ratchet.ReadExpected(filepath.Join(here, "expected-pass.txt"))
	if err != nil {
		return 0, err
	}
	if cri != "berth" {
		expected = map[string]bool{} // the comparison's count; berth's ratchet is berth's
	}
	kindBin := daemon.EnvOr("KIND_DIR", "/opt/berth/kind") + "/bin"
	kubeBin := daemon.KubeBinDir()
	agnhostRootFS := filepath.Join(daemon.EnvOr("KIND_CACHE", "/var/cache/berth/kind"), "agnhost-rootfs.tar")
	for _, b := range []string{filepath.Join(kindBin, "e2e.test"), filepath.Join(kindBin, "sample-apiserver"), filepath.Join(kubeBin, "ginkgo"), filepath.Join(kubeBin, "agnhost"), agnhostRootFS} {
		if _, err := os.Stat(b); err != nil {
			return 0, fmt.Errorf("%s is missing: run hack/install-kind.sh --conformance (make conformance does)", b)
		}
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		return 0, fmt.Errorf("no cluster: %w (make kind-up makes one)", err)
	}
	os.RemoveAll(report)
	if err := os.MkdirAll(report, 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp("", "berth-conformance-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	// The registry, on the kind network's gateway: the host's address on the nodes' network.
	provider := "docker"
	if os.Getenv("KIND_EXPERIMENTAL_PROVIDER") == "podman" {
		provider = "podman"
	}
	gateway, err := kindGateway(provider)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	src := images.Sources{Agnhost: filepath.Join(kubeBin, "agnhost"), AgnhostRootFS: agnhostRootFS, SampleAPIServer: filepath.Join(kindBin, "sample-apiserver")}
	reg, catalog, err := images.ServeSources(moduleDir, tmp, src, gateway+":0")
	if err != nil {
		return 0, err
	}
	defer reg.Close()
	hostsDir := filepath.Join(tmp, "certs.d")
	if err := reg.WriteHostsDir(hostsDir); err != nil {
		return 0, err
	}
	certsDir := "/etc/berth/certs.d"
	if cri == "containerd" {
		certsDir = "/etc/containerd/certs.d"
	}
	nodes, err := exec.Command("kind", "get", "nodes", "--name", cluster).Output()
	if err != nil {
		return 0, fmt.Errorf("kind get nodes: %w", err)
	}
	for _, n := range strings.Fields(string(nodes)) {
		if out, err := exec.Command(provider, "exec", n, "mkdir", "-p", certsDir).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", n, err, out)
		}
		if out, err := exec.Command(provider, "cp", hostsDir+"/.", n+":"+certsDir).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("copy the registry mirrors to %s: %v: %s", n, err, out)
		}
	}
	fmt.Printf("conformance: %d images served at %s in %s, mirrored on %d nodes\n", len(catalog), reg.Addr, time.Since(start).Round(time.Millisecond), len(strings.Fields(string(nodes))))

	skip := `\[Disruptive\]|\[Flaky\]`
	for _, s := range skips {
		skip += "|" + regexp.QuoteMeta(ratchet.SpecText(s.Spec))
	}
	args := []string{
		"--procs=" + procs, "--timeout=" + timeout, "--no-color", "--focus=" + focus, "--skip=" + skip,
		"--junit-report=junit.xml", "--output-dir=" + report,
		filepath.Join(kindBin, "e2e.test"), "--",
		"--kubeconfig=" + kubeconfig, "--provider=skeleton", "--report-dir=" + report,
		"--disable-log-dump", "--non-blocking-taints=node-role.kubernetes.io/control-plane",
	}
	logPath := filepath.Join(report, "ginkgo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(kubeBin, "ginkgo"), args...)
	cmd.Dir = tmp
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Printf("conformance: %s: running the suite (focus %s, %s processes; output in %s)\n", cri, focus, procs, logPath)
	runStart := time.Now()
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return 0, err
	}
	fmt.Printf("conformance: %s: the suite ran in %s\n", cri, time.Since(runStart).Round(time.Second))
	results, err := ratchet.ReadReport(filepath.Join(report, "junit.xml"))
	if err != nil {
		return 0, fmt.Errorf("%w (output in %s)", err, report)
	}
	return ratchet.Score(os.Stdout, "conformance", results, expected, skips, cri != "berth" || os.Getenv("CONFORMANCE_FOCUS") != ""), nil
}

// kindGateway is the IPv4 gateway of kind's network: the host's address there.
func kindGateway(provider string) (string, error) {
	out, err := exec.Command(provider, "network", "inspect", "kind").Output()
	if err != nil {
		return "", fmt.Errorf("%s network inspect kind: %w", provider, err)
	}
	var nets []struct {
		Subnets []struct{ Gateway string } `json:"subnets"` // podman
		IPAM    struct {
			Config []struct{ Gateway string }
		} // docker
	}
	if err := json.Unmarshal(out, &nets); err != nil || len(nets) == 0 {
		return "", fmt.Errorf("kind network: %v", err)
	}
	var gws []string
	for _, s := range nets[0].Subnets {
		gws = append(gws, s.Gateway)
	}
	for _, c := range nets[0].IPAM.Config {
		gws = append(gws, c.Gateway)
	}
	for _, g := range gws {
		if g != "" && !strings.Contains(g, ":") {
			return g, nil
		}
	}
	return "", errors.New("kind network has no IPv4 gateway")
}
