// Command node-e2e runs Kubernetes' node e2e suite (k8s.io/kubernetes/test/e2e_node, the
// version in hack/versions.env, built by hack/install-node-e2e.sh, with the kubelet beside it) against a berthd it starts,
// or against containerd's own CRI for the side-by-side count, with the suite's images built here
// and served from a registry on loopback that the runtime reaches through its registry mirror
// configuration. The suite starts etcd, the API server and a kubelet itself. It keeps score as
// the critest runner does: every spec in expected-pass.txt must pass; skip.txt lists the specs
// left out on purpose, each with its reason.
//
// The run's shape: the [NodeConformance] specs that are neither Serial, Slow, Flaky nor
// Disruptive, run by the ginkgo CLI in NODE_E2E_PROCS parallel processes (the way Kubernetes'
// own CI runs them), less three families of long specs unless NODE_E2E_ALL is set: the 129
// "Containers Lifecycle" specs (the init and sidecar container matrix, 30-90 s each), the 46
// "Probing" specs (probe timeouts of minutes) and "Device Plugin" (grace periods).
//
// Environment:
//
//	CRI_ENDPOINT      "containerd" runs containerd's own CRI (the pinned build) instead of berthd
//	NODE_E2E_FOCUS    the ginkgo focus (default: \[NodeConformance\]|ImageVolume|Feature:CheckpointContainer)
//	NODE_E2E_ALL      set: run the long families too (several hours on 2 cores)
//	NODE_E2E_PROCS    parallel ginkgo processes (default 6)
//	NODE_E2E_REPORT   where the report, the kubelet's and the runtime's logs go (default bin/node-e2e[-containerd])
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/ratchet"
)

// The pod network of the runtime under test.
const (
	e2eNetwork = "berth-node-e2e"
	e2eBridge  = "berthnode0"
	e2eSubnet  = "10.67.0.0/16"
)

// defaultSkip is the part of the run's shape that is not about the runtime: what Kubernetes' CI
// leaves out of a parallel node conformance run.
const defaultSkip = `\[Serial\]|\[Slow\]|\[Flaky\]|\[Disruptive\]`

// defaultFocus is the node conformance suite and the image volume specs (GA in 1.36, which the
// suite has under [Feature:ImageVolume] and in one [Conformance] spec, neither [NodeConformance]).
const defaultFocus = `\[NodeConformance\]|ImageVolume|Feature:CheckpointContainer`

// longSkip are the long families the default run leaves out (NODE_E2E_ALL runs them).
const longSkip = `\[sig-node\] Containers Lifecycle|\[sig-node\] Probing|\[sig-node\] Device Plugin`

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "node-e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run() (int, error) {
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		return 0, err
	}
	here := filepath.Join(moduleDir, "test", "node-e2e")
	runtimeName := "berth"
	if os.Getenv("CRI_ENDPOINT") == "containerd" {
		runtimeName = "containerd"
	}
	skips, err := ratchet.ReadSkips(filepath.Join(here, "skip.txt"))
	if err != nil {
		return 0, err
	}
	expected, err := ratchet.ReadExpected(filepath.Join(here, "expected-pass.txt"))
	if err != nil {
		return 0, err
	}
	if runtimeName == "containerd" {
		// containerd's count is the comparison; berth's ratchet does not apply to it.
		expected = map[string]bool{}
	}
	kubeBin := daemon.KubeBinDir()
	for _, b := range []string{"e2e_node.test", "ginkgo", "agnhost", "kubelet"} {
		if _, err := os.Stat(filepath.Join(kubeBin, b)); err != nil {
			return 0, fmt.Errorf("%s/%s is missing: run hack/install-deps.sh and hack/install-node-e2e.sh (make node-e2e does)", kubeBin, b)
		}
	}

	tmp, err := os.MkdirTemp("", "berth-node-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	report := os.Getenv("NODE_E2E_REPORT")
	if report == "" {
		report = filepath.Join(moduleDir, "bin", "node-e2e")
		if runtimeName == "containerd" {
			report += "-containerd"
		}
	}
	os.RemoveAll(report)
	if err := os.MkdirAll(report, 0o755); err != nil {
		return 0, err
	}

	start := time.Now()
	reg, catalog, err := images.Serve(moduleDir, tmp, filepath.Join(kubeBin, "agnhost"), "")
	if err != nil {
		return 0, err
	}
	defer reg.Close()
	hostsDir := filepath.Join(tmp, "certs.d")
	if err := reg.WriteHostsDir(hostsDir); err != nil {
		return 0, err
	}
	fmt.Printf("node-e2e: %d images served at %s in %s\n", len(catalog), reg.Addr, time.Since(start).Round(time.Millisecond))

	endpoint, processName, stop, err := startRuntime(runtimeName, tmp, hostsDir, report)
	if err != nil {
		return 0, err
	}
	defer stop()
	fmt.Printf("node-e2e: %s serving CRI at %s\n", runtimeName, endpoint)
	if err := prepull(endpoint, images.Refs(catalog)); err != nil {
		return 0, err
	}

	host := daemon.ReadHostState()
	code, err := runSuite(tmp, report, kubeBin, endpoint, processName, skips)
	host.Restore() // the suite's kubelet is gone; what it added to the node goes too
	if err != nil {
		return 0, err
	}
	results, err := ratchet.ReadReport(filepath.Join(report, "junit_01.xml"))
	if err != nil {
		return 0, fmt.Errorf("%w (ginkgo exit %d; output in %s)", err, code, report)
	}
	fmt.Printf("node-e2e: %s: the run took %s\n", runtimeName, time.Since(start).Round(time.Second))
	return ratchet.Score(os.Stdout, "node-e2e", results, expected, skips, os.Getenv("NODE_E2E_FOCUS") != "" || runtimeName == "containerd"), nil
}

// startRuntime starts berthd, or containerd's CRI, on a pod network of its own.
func startRuntime(name, tmp, hostsDir, report string) (endpoint, process string, stop func(), err error) {
	if name == "containerd" {
		c, err := daemon.StartContainerdCRI(hostsDir)
		if err != nil {
			return "", "", nil, err
		}
		return c.Endpoint(), "containerd", func() {
			copyFile(filepath.Join(c.Dir, "containerd.log"), filepath.Join(report, "containerd.log"))
			c.Cleanup()
		}, nil
	}
	cniDir := filepath.Join(tmp, "net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-node-e2e.conflist"), []byte(daemon.CNIConflist(e2eNetwork, e2eBridge, e2eSubnet)), 0o644); err != nil {
		return "", "", nil, err
	}
	// test-handler: runc under a second name, the handler the suite's RuntimeClass specs ask for
	// (Kubernetes' CI configures containerd so; StartContainerdCRI does too).
	d, err := daemon.Start("--registry-config-dir", hostsDir, "--cni-conf-dir", cniDir, "--log-level", "info", "--runtime-handler", "test-handler")
	if err != nil {
		return "", "", nil, err
	}
	return d.Endpoint(), "berthd", func() {
		copyFile(filepath.Join(d.Dir, "berthd.log"), filepath.Join(report, "berthd.log"))
		d.Cleanup()
		exec.Command("ip", "link", "delete", e2eBridge).Run()
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", e2eNetwork))
	}, nil
}

// prepull pulls the suite's images through the CRI, so that no spec waits for a first pull.
func prepull(endpoint string, refs []string) error {
	conn, err := daemon.Dial(endpoint)
	if err != nil {
		return err
	}
	defer conn.Close()
	is := runtimeapi.NewImageServiceClient(conn)
	start := time.Now()
	n := 0
	for _, ref := range refs {
		if !strings.HasPrefix(ref, "registry.k8s.io/") {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		cancel()
		if err != nil {
			return fmt.Errorf("prepull %s: %w", ref, err)
		}
		n++
	}
	fmt.Printf("node-e2e: prepulled %d images in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// runSuite runs e2e_node.test under the ginkgo CLI in dir, with the report and the kubelet's log
// in report, and returns ginkgo's exit code (non-zero when a spec failed).
func runSuite(dir, report, kubeBin, endpoint, processName string, skips []ratchet.Skip) (int, error) {
	cfg := filepath.Join(dir, "kubelet-base.yaml")
	if err := os.WriteFile(cfg, []byte(daemon.KubeletNodeConfig), 0o644); err != nil {
		return 0, err
	}
	path, err := pathWithoutSystemdRun(dir)
	if err != nil {
		return 0, err
	}
	focus := os.Getenv("NODE_E2E_FOCUS")
	if focus == "" {
		focus = defaultFocus
	}
	skip := defaultSkip
	if os.Getenv("NODE_E2E_ALL") == "" {
		skip += "|" + longSkip
	}
	for _, s := range skips {
		skip += "|" + regexp.QuoteMeta(ratchet.SpecText(s.Spec))
	}
	procs := os.Getenv("NODE_E2E_PROCS")
	if procs == "" {
		procs = "6"
	}
	// ginkgo runs the suite in the binary's directory, where the suite writes the kubelet's
	// config, kubeconfig and static pods, and looks for the kubelet beside the binary: both are
	// linked into the run's own directory.
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return 0, err
	}
	for _, b := range []string{"e2e_node.test", "kubelet"} {
		if err := os.Symlink(filepath.Join(kubeBin, b), filepath.Join(bin, b)); err != nil {
			return 0, err
		}
	}
	hostname, _ := os.Hostname()
	args := []string{
		"--procs=" + procs, "--timeout=2h", "--no-color", "--focus=" + focus, "--skip=" + skip,
		"--junit-report=junit_01.xml", "--output-dir=" + report,
		filepath.Join(bin, "e2e_node.test"), "--",
		"--container-runtime-endpoint=" + endpoint, "--image-service-endpoint=" + endpoint,
		"--container-runtime-process-name=" + processName, "--container-runtime-pid-file=",
		"--prepull-images=false", "--report-dir=" + report, "--node-name=" + hostname,
		"--kubelet-config-file=" + cfg, // the kubelet is found beside e2e_node.test
	}
	logPath := filepath.Join(report, "ginkgo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(kubeBin, "ginkgo"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Printf("node-e2e: running the suite (focus %s, %s processes; output in %s)\n", focus, procs, logPath)
	start := time.Now()
	err = cmd.Run()
	fmt.Printf("node-e2e: the suite ran in %s\n", time.Since(start).Round(time.Second))
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// pathWithoutSystemdRun returns a PATH in which systemd-run is not found. The suite starts the
// kubelet through systemd-run whenever it finds one, and this kind of machine has the binary
// without systemd running: the kubelet would never start. A private mount namespace would hide
// it too, but the kubelet would then mount volumes where runc (in the node's namespace) cannot
// see them.
func pathWithoutSystemdRun(dir string) (string, error) {
	bin := filepath.Join(dir, "path")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "systemd-run")); err != nil {
			keep = append(keep, d)
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return "", err
		}
		for _, e := range entries {
			if e.Name() == "systemd-run" {
				continue
			}
			link := filepath.Join(bin, e.Name())
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier directory of PATH has it
			}
			if err := os.Symlink(filepath.Join(d, e.Name()), link); err != nil {
				return "", err
			}
		}
		keep = append(keep, bin)
	}
	return strings.Join(keep, string(os.PathListSeparator)), nil
}

func copyFile(from, to string) {
	if b, err := os.ReadFile(from); err == nil {
		os.WriteFile(to, b, 0o644)
	}
}
