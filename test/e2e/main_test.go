// Package e2e drives a real berthd (with a real containerd, runc and CNI) through the CRI client
// and checks on the host what each call promised. It needs root; `make e2e` runs it.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/berth-runtime/berth/runtime"
	"github.com/berth-runtime/berth/test/daemon"
)

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_E2E") == "" {
		fmt.Println("e2e: skipped: set BERTH_E2E=1 (as root, after `make build`) or run `make e2e`")
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root")
		os.Exit(1)
	}
	if _, err := daemon.Binary(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// startDaemon starts a berthd for one test, cleaned up when the test ends; its logs are shown
// when the test fails.
func startDaemon(t *testing.T, extra ...string) *daemon.Daemon {
	t.Helper()
	d, err := daemon.Start(extra...)
	if err != nil {
		t.Fatalf("start berthd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("berthd logs:\n%s", d.Logs())
		}
		d.Cleanup()
	})
	return d
}

// tool finds an installed tool on PATH or in /opt/berth/bin, where hack/install-deps.sh puts it.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/opt/berth/bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not installed: run hack/install-deps.sh", name)
	}
	return p
}

// containerdClient connects to d's managed containerd, in berth's namespace, until the test ends.
func containerdClient(t *testing.T, d *daemon.Daemon) *containerd.Client {
	t.Helper()
	client, err := containerd.New(filepath.Join(d.State, "containerd", "containerd.sock"), containerd.WithDefaultNamespace(runtime.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}
