package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// atLeast reports whether version (x.y.z) is at least the fixed version of its own minor
// series in fixed ("1.2.8", "1.3.3"), or of the newest series listed when it is newer.
func atLeast(version string, fixed ...string) bool {
	parse := func(v string) (n [3]int) {
		fmt.Sscanf(strings.TrimPrefix(v, "v"), "%d.%d.%d", &n[0], &n[1], &n[2])
		return n
	}
	v := parse(version)
	less := func(a, b [3]int) bool {
		for i := range a {
			if a[i] != b[i] {
				return a[i] < b[i]
			}
		}
		return false
	}
	newest := parse(fixed[len(fixed)-1])
	for _, f := range fixed {
		if p := parse(f); p[0] == v[0] && p[1] == v[1] {
			return !less(v, p)
		}
	}
	return !less(v, newest)
}

func TestAtLeast(t *testing.T) {
	for _, test := range []struct {
		v    string
		ok   bool
		note string
	}{
		{"1.2.8", true, "the fix of its series"}, {"1.2.7", false, "before it"}, {"1.3.4", true, "after it"},
		{"1.5.3", true, "a newer series"}, {"1.1.15", false, "an older series"}, {"v2.4.2", true, "a v prefix"},
	} {
		if got := atLeast(test.v, "1.2.8", "1.3.3", "1.4.0"); got != test.ok {
			t.Errorf("atLeast(%s) = %v, want %v (%s)", test.v, got, test.ok, test.note)
		}
	}
}

// The advisories whose fix is in runc or in the containerd daemon, not in berth: the binaries
// berth runs (hack/versions.env's pins, as hack/install-deps.sh installs them) must carry the
// fixes, so that a pin moved back to an unsafe version fails here.
//   - runc's GHSA-9493-h29p-rfm2, GHSA-qw9x-cqr3-wc7r and GHSA-cgrx-mc8f-2prm (mount races
//     that redirect masked paths, /dev/console and /proc writes): 1.2.8, 1.3.3, 1.4.0.
//   - runc's GHSA-xr7r-f8xq-vfvv (a working directory through a leaked fd): 1.1.12; replayed
//     below as well.
//   - containerd's GHSA-pwhc-rpq9-4c8w, GHSA-m6hq-p25p-ffr2 and GHSA-cxfp-7pvr-95ff: 1.7.29,
//     2.0.7, 2.1.5 (berth's own code paths for them are tested by the other advisory tests).
func TestAdvisoryPinnedRuncAndContainerd(t *testing.T) {
	// The runc the shims run: the one beside the managed containerd's executable, whose
	// directory berth puts first on the PATH of containerd and of the shims.
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", d.ContainerdPid()))
	if err != nil {
		t.Fatal(err)
	}
	runcBin := filepath.Join(filepath.Dir(exe), "runc")
	t.Logf("the shims run %s", runcBin)
	out, err := exec.Command(runcBin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	runc := regexp.MustCompile(`runc version (\S+)`).FindStringSubmatch(string(out))
	if runc == nil || !atLeast(runc[1], "1.2.8", "1.3.3", "1.4.0") {
		t.Errorf("runc %q lacks the fixes of GHSA-9493-h29p-rfm2, GHSA-qw9x-cqr3-wc7r, GHSA-cgrx-mc8f-2prm:\n%s", runc, out)
	}
	out, err = exec.Command(exe, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	ctrd := regexp.MustCompile(`\sv?(\d+\.\d+\.\d+)`).FindStringSubmatch(string(out))
	if ctrd == nil || !atLeast(ctrd[1], "1.7.29", "2.0.7", "2.1.5") {
		t.Errorf("containerd %q lacks the fixes of GHSA-pwhc-rpq9-4c8w, GHSA-m6hq-p25p-ffr2, GHSA-cxfp-7pvr-95ff:\n%s", ctrd, out)
	}
}

// runc's GHSA-xr7r-f8xq-vfvv: a working directory of /proc/self/fd/<n> named a directory of the
// node through a file descriptor runc leaked into the container. The container is refused, or
// its process's working directory is inside its own root.
func TestAdvisoryWorkingDirThroughALeakedFD(t *testing.T) {
	e := newContainerEnv(t, "advisory-cwd")
	for fd := 3; fd <= 9; fd++ {
		name := fmt.Sprintf("cwd-fd%d", fd)
		resp, err := e.d.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg,
			Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name}, Image: &runtimeapi.ImageSpec{Image: busyboxRef},
				Command: []string{"sleep", "3600"}, WorkingDir: fmt.Sprintf("/proc/self/fd/%d", fd)}})
		if err == nil {
			_, err = e.d.Runtime.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId})
		}
		if err != nil {
			continue // refused
		}
		st, err := e.d.Runtime.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: resp.ContainerId, Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		pid := regexp.MustCompile(`"pid":\s*(\d+)`).FindStringSubmatch(st.GetInfo()["info"])
		if pid == nil {
			t.Fatalf("%s: no pid in the verbose status", name)
		}
		cwd, _ := os.Readlink("/proc/" + pid[1] + "/cwd")
		root, _ := os.Readlink("/proc/" + pid[1] + "/root")
		if !strings.HasPrefix(cwd, root) || root == "/" {
			t.Errorf("%s: the process's working directory %s is outside its root %s", name, cwd, root)
		}
	}
}
