// Package kubelet runs a real kubelet (k8s.io/kubernetes, the version pinned in
// hack/versions.env) in front of a real berthd and checks that the pods a kubelet makes run as
// the kubelet expects: the smoke test of `make test`. critest speaks CRI but is not the kubelet;
// this is the client berth exists for. It needs root; `make kubelet-smoke` runs it.
package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-runtime/berth/test/daemon"
)

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_E2E") == "" {
		fmt.Println("kubelet smoke: skipped: set BERTH_E2E=1 (as root, after `make build`) or run `make kubelet-smoke`")
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "kubelet smoke: must run as root")
		os.Exit(1)
	}
	if _, err := daemon.Binary(); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet smoke:", err)
		os.Exit(1)
	}
	if _, err := os.Stat(filepath.Join(daemon.KubeBinDir(), "kubelet")); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet smoke: no kubelet: run hack/install-deps.sh")
		os.Exit(1)
	}
	os.Exit(m.Run())
}
