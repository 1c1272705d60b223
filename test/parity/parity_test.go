package parity

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

// The pod network of the berthd under test; containerd's has its own (daemon.StartContainerdCRI).
const (
	parityNetwork = "berth-parity"
	parityBridge  = "berthpar0"
)

// sharedDir is the directory every case may point at: a shared mount point and a seccomp profile.
var sharedDir string

// TestParity sends every case to berth and to containerd's own CRI plugin and fails on each
// difference in the OCI spec, the process's view or the container status that intended.txt
// does not list. It needs root, the installed containerd, runc and CNI plugins and a built
// berthd: `make parity` (PARITY_FOCUS, a regular expression, runs some cases).
func TestParity(t *testing.T) {
	if os.Getenv("BERTH_E2E") == "" {
		t.Skip("set BERTH_E2E=1 (as root, after `make build`) or run `make parity`")
	}
	intended, err := ReadIntended("intended.txt")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	sides := startSides(t)

	var refs []string
	seen := map[string]bool{}
	for _, c := range cases {
		for _, r := range append([]string{c.imageRef()}, c.pull...) {
			if !seen[r] {
				seen[r] = true
				refs = append(refs, r)
			}
		}
	}
	if err := pullAll(ctx, sides, refs); err != nil {
		t.Fatal(err)
	}

	var report strings.Builder
	var passed, failed int
	focus := os.Getenv("PARITY_FOCUS")
	for i := range cases {
		c := &cases[i]
		if focus != "" && !strings.Contains(c.name, focus) {
			continue
		}
		ok := t.Run(c.name, func(t *testing.T) {
			outs := make([]*outcome, len(sides))
			var wg sync.WaitGroup
			for j, s := range sides {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
					defer cancel()
					outs[j] = s.run(cctx, c)
				}()
			}
			wg.Wait()
			diffs := compareOutcomes(c.name, sides, outs)
			for _, d := range diffs {
				if e := intended.Match(d); e != nil {
					fmt.Fprintf(&report, "kept   %s\n       (intended.txt:%d: %s)\n", d, e.Line, e.Reason)
					continue
				}
				fmt.Fprintf(&report, "DIFFERS %s\n", d)
				t.Errorf("%s", d)
			}
		})
		if ok {
			passed++
		} else {
			failed++
		}
	}
	for _, e := range intended.Entries {
		if e.Used == 0 && focus == "" {
			fmt.Fprintf(&report, "unused intended.txt:%d %s\n", e.Line, e.Glob)
		}
	}
	if dir, err := images.ModuleRoot(); err == nil {
		path := filepath.Join(dir, "bin", "parity-report.txt")
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err == nil {
			t.Logf("every difference found, kept or not: %s", path)
		}
	}
	fmt.Printf("parity: %d passed, %d failed, %d skipped\n", passed, failed, len(cases)-passed-failed)
}

// compareOutcomes lists the differences between what berth and containerd made of one case,
// each keyed "<case>/<kind>/<field>". Both refusing the request is agreement; one refusing
// is the one difference "<case>/outcome".
func compareOutcomes(name string, sides []*side, outs []*outcome) []Difference {
	b, c := outs[0], outs[1]
	var checks []Difference
	for i, o := range outs {
		if o.checkErr != "" {
			// Never intended: the case says what a right container has.
			checks = append(checks, Difference{Key: name + "/check/" + sides[i].name, Berth: b.checkErr, Containerd: c.checkErr})
		}
	}
	if len(checks) > 0 {
		return checks
	}
	if b.err != "" || c.err != "" {
		// Both refusing is agreement, whichever step refused (berth refuses a request it can
		// tell is wrong at CreateContainer, where containerd may leave it to runc).
		if b.err != "" && c.err != "" {
			return nil
		}
		return []Difference{{Key: name + "/outcome", Berth: orRan(b.err), Containerd: orRan(c.err)}}
	}
	norm := func(o *outcome, s *side, dirs ...string) Normalizer {
		pairs := []string{o.ctrID, "<ctr>", o.podID, "<pod>", s.cgroupParent, "/parity-<runtime>",
			filepath.Join(sharedDir, "propagated", s.name), "<shared>/propagated/<runtime>"}
		for _, d := range dirs {
			pairs = append(pairs, d, "<root>")
		}
		return NewNormalizer(pairs...)
	}
	nb := norm(b, sides[0], sides[0].dir, sides[0].stateDir)
	nc := norm(c, sides[1], sides[1].dir, sides[1].stateDir)
	var out []Difference
	for _, kind := range []struct {
		name string
		b, c Fields
	}{{"spec", b.spec, c.spec}, {"process", b.view, c.view}, {"sysctl", b.sysctl, c.sysctl}, {"status", b.status, c.status}} {
		out = append(out, Diff(name+"/"+kind.name+"/", nb.Fields(kind.b), nc.Fields(kind.c))...)
	}
	return out
}

func orRan(err string) string {
	if err == "" {
		return "ran"
	}
	return "refused: " + err
}

// startSides starts a berthd and containerd's CRI plugin with the test images behind their
// registry mirrors, and makes the directories and mounts the cases point at.
func startSides(t *testing.T) []*side {
	t.Helper()
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	reg, _, err := images.Serve(moduleDir, tmp, "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	hosts := filepath.Join(tmp, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		t.Fatal(err)
	}
	sharedDir = filepath.Join(tmp, "shared")
	makeShared(t, sharedDir)

	cniDir := filepath.Join(tmp, "net.d")
	os.MkdirAll(cniDir, 0o755)
	if err := os.WriteFile(filepath.Join(cniDir, "10-parity.conflist"), []byte(daemon.CNIConflist(parityNetwork, parityBridge, "10.67.0.0/16")), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "delete", parityBridge).Run()
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", parityNetwork))
	})
	berthCDI := filepath.Join(tmp, "cdi")
	d, err := daemon.Start("--registry-config-dir", hosts, "--cni-conf-dir", cniDir, "--cdi-spec-dirs", berthCDI)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			os.WriteFile(filepath.Join(moduleDir, "bin", "parity-berthd.log"), []byte(d.Logs()), 0o644)
		}
		d.Cleanup()
	})
	ctrd, err := daemon.StartContainerdCRI(hosts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctrd.Cleanup)
	for _, dir := range []string{berthCDI, ctrd.CDIDir} {
		writeCDISpec(t, dir)
	}

	berthEngine, err := containerd.New(filepath.Join(d.State, "containerd", "containerd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { berthEngine.Close() })
	ctrdEngine, err := containerd.New(ctrd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrdEngine.Close() })
	conn, err := daemon.Dial(ctrd.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	sides := []*side{
		{name: "berth", runtime: d.Runtime, image: d.Image, engine: berthEngine, ns: runtime.Namespace,
			dir: filepath.Join(tmp, "berth"), stateDir: d.Dir, cgroupParent: "/parity-berth"},
		{name: "containerd", runtime: runtimeapi.NewRuntimeServiceClient(conn), image: runtimeapi.NewImageServiceClient(conn),
			engine: ctrdEngine, ns: "k8s.io", dir: filepath.Join(tmp, "containerd"), stateDir: ctrd.Dir, cgroupParent: "/parity-containerd"},
	}
	t.Cleanup(func() {
		// The kubelet removes a pod's cgroup; here the test does, after both runtimes removed
		// their pods' containers.
		for _, s := range sides {
			removeCgroups(s.cgroupParent)
		}
	})
	return sides
}

// makeShared makes dir a shared mount point (bind-mounted on itself) holding a directory per
// side, for the propagation cases, and writes the seccomp profile of the Localhost case.
func makeShared(t *testing.T, dir string) {
	t.Helper()
	for _, s := range []string{"berth", "containerd"} {
		if err := os.MkdirAll(filepath.Join(dir, "propagated", s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "propagated")
	if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
	if err := unix.Mount("", p, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(filepath.Join(dir, "seccomp.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCDISpec writes the CDI spec of the cases' device into dir: a device node, an environment
// variable and a mount, and an edit for every device of the vendor.
func writeCDISpec(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(sharedDir, "cdi-file")
	if err := os.WriteFile(file, []byte("from a CDI spec\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`{"cdiVersion": "0.6.0", "kind": "parity.example.com/device",
 "devices": [{"name": "null", "containerEdits": {
   "deviceNodes": [{"path": "/dev/parity-cdi", "hostPath": "/dev/null"}],
   "env": ["PARITY_CDI=null"],
   "mounts": [{"hostPath": %q, "containerPath": "/etc/parity-cdi", "options": ["ro", "bind"]}]}}],
 "containerEdits": {"env": ["PARITY_CDI_VENDOR=parity"]}}`, file)
	if err := os.WriteFile(filepath.Join(dir, "parity.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// removeCgroups removes the cgroup directories named parent in every hierarchy, deepest first.
func removeCgroups(parent string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	if unified := "/sys/fs/cgroup" + parent; dirExists(unified) {
		roots = append(roots, unified)
	}
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			unix.Rmdir(d)
		}
	}
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
