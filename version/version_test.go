package version

import (
	"os/exec"
	"testing"

	utilversion "k8s.io/apimachinery/pkg/util/version"
)

// The kubelet parses the runtime's version as a semantic one and shows berth://Unknown on the
// node when it does not parse (found on a kind node: git describe gave a bare commit hash).
func TestVersionIsSemantic(t *testing.T) {
	out, err := exec.Command("bash", "../hack/version.sh").Output()
	if err != nil {
		t.Fatalf("hack/version.sh: %v", err)
	}
	for _, v := range []string{Version, string(out[:len(out)-1])} {
		if _, err := utilversion.ParseSemantic(v); err != nil {
			t.Errorf("version %q: %v", v, err)
		}
	}
}
