// Command conformance runs critest (the CRI validation suite) against a berthd it starts in a
// temporary root, or against CRI_ENDPOINT, with the offline test images served from a registry on
// loopback that the runtime reaches through its registry mirror configuration. It keeps score:
// every spec in expected-pass.txt must pass; a spec that passes but is not listed is reported as
// newly passing.
//
// Environment:
//
//	CRI_ENDPOINT                 run against this endpoint instead of starting a berthd; the
//	                             word "containerd" starts containerd's own CRI plugin instead
//	CRITEST_REGISTRY_ADDR        host:port for the registry (default: a free loopback port)
//	CRITEST_REGISTRY_CONFIG_DIR  where to write hosts.toml files (default: a temporary directory)
//	CRITEST_FOCUS                run only the specs matching this regular expression
//	CRITEST_PARALLEL             critest's --parallel (needs the ginkgo CLI on PATH)
//	CRITEST_LOG                  where to keep critest's full output (default: bin/critest.log)
package main

import (
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

// The pod network of the berthd under test.
const (
	critestNetwork = "berth-critest"
	critestBridge  = "berthcrit0"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "critest:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run() (int, error) {
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		return 0, err
	}
	here := filepath.Join(moduleDir, "test", "conformance")
	skips, err := ratchet.ReadSkips(filepath.Join(here, "skip.txt"))
	if err != nil {
		return 0, err
	}
	expected, err := ratchet.ReadExpected(filepath.Join(here, "expected-pass.txt"))
	if err != nil {
		return 0, err
	}

	tmp, err := os.MkdirTemp("", "berth-critest-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	reg, _, err := images.Serve(moduleDir, tmp, "", os.Getenv("CRITEST_REGISTRY_ADDR"))
	if err != nil {
		return 0, err
	}
	defer reg.Close()
	hostsDir := os.Getenv("CRITEST_REGISTRY_CONFIG_DIR")
	if hostsDir == "" {
		hostsDir = filepath.Join(tmp, "certs.d")
	}
	if err := reg.WriteHostsDir(hostsDir); err != nil {
		return 0, err
	}
	fmt.Printf("critest: images served at %s (hosts.toml in %s) in %s\n", reg.Addr, hostsDir, time.Since(start).Round(time.Millisecond))

	endpoint := os.Getenv("CRI_ENDPOINT")
	if endpoint == "containerd" {
		// containerd's own CRI plugin, same containerd and runc as berth, same images.
		c, err := daemon.StartContainerdCRI(hostsDir)
		if err != nil {
			return 0, err
		}
		defer c.Cleanup()
		endpoint = c.Endpoint()
		fmt.Printf("critest: containerd's CRI serving at %s (logs: %s)\n", endpoint, filepath.Join(c.Dir, "containerd.log"))
	}
	if endpoint == "" {
		// Pods get a network of their own, removed afterwards, so the run leaves the host as it was.
		cniDir := filepath.Join(tmp, "net.d")
		if err := os.MkdirAll(cniDir, 0o755); err != nil {
			return 0, err
		}
		conf := daemon.CNIConflist(critestNetwork, critestBridge, "10.66.0.0/16")
		if err := os.WriteFile(filepath.Join(cniDir, "10-critest.conflist"), []byte(conf), 0o644); err != nil {
			return 0, err
		}
		defer func() {
			exec.Command("ip", "link", "delete", critestBridge).Run()
			os.RemoveAll(filepath.Join("/var/lib/cni/networks", critestNetwork))
		}()
		d, err := daemon.Start("--registry-config-dir", hostsDir, "--cni-conf-dir", cniDir)
		if err != nil {
			return 0, err
		}
		keptLog := filepath.Join(moduleDir, "bin", "critest-berthd.log")
		defer func() {
			// Keep berthd's log for a look at what failed; the rest goes.
			if b, err := os.ReadFile(filepath.Join(d.Dir, "berthd.log")); err == nil {
				os.WriteFile(keptLog, b, 0o644)
			}
			d.Cleanup()
		}()
		endpoint = d.Endpoint()
		fmt.Printf("critest: berthd serving at %s (log kept in %s)\n", endpoint, keptLog)
	}

	logPath := os.Getenv("CRITEST_LOG")
	if logPath == "" {
		logPath = filepath.Join(moduleDir, "bin", "critest.log")
	}
	report := filepath.Join(tmp, "junit.xml")
	if err := runCritest(endpoint, skips, report, logPath); err != nil {
		return 0, err
	}
	results, err := ratchet.ReadReport(report)
	if err != nil {
		return 0, fmt.Errorf("%w (critest output: %s)", err, logPath)
	}
	return ratchet.Score(os.Stdout, "critest", results, expected, skips, os.Getenv("CRITEST_FOCUS") != ""), nil
}

func runCritest(endpoint string, skips []ratchet.Skip, report, logPath string) error {
	bin, err := exec.LookPath("critest")
	if err != nil {
		bin = "/opt/berth/bin/critest"
	}
	args := []string{
		"--runtime-endpoint", endpoint, "--image-endpoint", endpoint,
		"-ginkgo.junit-report=" + report,
		"-ginkgo.no-color",
	}
	if len(skips) > 0 {
		parts := make([]string, len(skips))
		for i, s := range skips {
			parts[i] = regexp.QuoteMeta(s.Spec)
		}
		args = append(args, "-ginkgo.skip="+strings.Join(parts, "|"))
	}
	if f := os.Getenv("CRITEST_FOCUS"); f != "" {
		args = append(args, "-ginkgo.focus="+f)
	}
	if p := os.Getenv("CRITEST_PARALLEL"); p != "" {
		args = append(args, "--parallel="+p)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	err = cmd.Run()
	fmt.Printf("critest: ran in %s (output: %s)\n", time.Since(start).Round(time.Second), logPath)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	// A non-zero exit only says that some spec failed; the report says which.
	return nil
}
