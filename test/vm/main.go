// Command vm runs `make vm-test`: berth on a cgroup v2 node with systemd as PID 1, a Debian
// guest under qemu (hack/vm-image.sh builds it, cached). berth goes in as an operator installs
// it (`make install` into the run's directory, copied over the guest's root), berthd runs as
// berth.service, and the guest tests (test/vm/guest) drive it through the CRI socket and check
// the node from systemd and /sys/fs/cgroup. The guest pulls through a registry the host serves
// on loopback, which qemu's user network shows the guest as 10.0.2.2.
//
// It prints "vm-test: N passed, N failed, N skipped" and keeps a ratchet: every test in
// expected-pass.txt must pass. The guest's console, berthd's journal and the tests' output are
// kept in bin/vm-run/.
//
// Environment: VM_DIR (the cached guest, default /var/cache/berth/vm), VM_TIMEOUT (default 45m),
// VM_FOCUS (a -test.run pattern for the guest tests: a slice, scored against the expected
// passes it matches; no reboot unless it takes TestRebootPrepare).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/ratchet"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vm-test:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run() (int, error) {
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		return 0, err
	}
	vmDir := daemon.EnvOr("VM_DIR", "/var/cache/berth/vm")
	timeout, err := time.ParseDuration(daemon.EnvOr("VM_TIMEOUT", "45m"))
	if err != nil {
		return 0, fmt.Errorf("VM_TIMEOUT: %w", err)
	}
	runDir := filepath.Join(moduleDir, "bin", "vm-run")
	share := runDir // the 9p share: root/ (what make install put), vm.test, run.sh, results/
	if _, err := os.Stat(filepath.Join(share, "root", "usr", "local", "bin", "berthd")); err != nil {
		return 0, fmt.Errorf("no berth installed in %s (make vm-test runs make install DESTDIR=%s/root first): %w", share, share, err)
	}
	if _, err := os.Stat(filepath.Join(share, "vm.test")); err != nil {
		return 0, fmt.Errorf("no guest test binary: %w", err)
	}
	results := filepath.Join(share, "results")
	os.RemoveAll(results)
	if err := os.MkdirAll(results, 0o755); err != nil {
		return 0, err
	}

	// CNI plugins and the pods' network, as on any node.
	cniDir := filepath.Join(share, "root", "opt", "cni", "bin")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return 0, err
	}
	if out, err := exec.Command("cp", "-a", "/opt/cni/bin/.", cniDir+"/").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("copy CNI plugins: %v\n%s", err, out)
	}
	// The kubelet of the guest tests, as the kubelet smoke's.
	kubeDir := filepath.Join(share, "root", "opt", "berth", "kube")
	if err := os.MkdirAll(kubeDir, 0o755); err != nil {
		return 0, err
	}
	if out, err := exec.Command("cp", filepath.Join(daemon.KubeBinDir(), "kubelet"), kubeDir+"/").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("copy the kubelet: %v\n%s", err, out)
	}
	netDir := filepath.Join(share, "root", "etc", "cni", "net.d")
	if err := os.MkdirAll(netDir, 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(netDir, "10-berth.conflist"), []byte(daemon.CNIConflist("berth-vm", "berthvm0", "10.88.0.0/16")), 0o644); err != nil {
		return 0, err
	}

	// The images, served on the host's loopback: the guest's 10.0.2.2.
	tmp, err := os.MkdirTemp("", "berth-vm-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	reg, _, err := images.Serve(moduleDir, tmp, "", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer reg.Close()
	_, port, _ := strings.Cut(reg.Addr, ":")
	certs := filepath.Join(share, "root", "etc", "berth", "certs.d")
	os.RemoveAll(certs)
	if err := reg.WriteHostsDirAt(certs, "10.0.2.2:"+port); err != nil {
		return 0, err
	}
	focus := os.Getenv("VM_FOCUS")
	critestSkips, err = ratchet.ReadSkips(filepath.Join(moduleDir, "test", "conformance", "skip.txt"))
	if err != nil {
		return 0, err
	}
	var skipRE []string
	for _, s := range critestSkips {
		skipRE = append(skipRE, regexp.QuoteMeta(s.Spec))
	}
	if out, err := exec.Command("cp", "/opt/berth/bin/critest", filepath.Join(share, "root", "opt", "berth", "bin")+"/").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("copy critest: %v\n%s", err, out)
	}
	script := guestScript(focus, strings.ReplaceAll(strings.Join(skipRE, "|"), "'", `'\''`))
	if err := os.WriteFile(filepath.Join(share, "run.sh"), []byte(script), 0o755); err != nil {
		return 0, err
	}

	// A throw-away layer over the cached guest, so every run boots the same node.
	disk := filepath.Join(runDir, "disk.qcow2")
	os.Remove(disk)
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", filepath.Join(vmDir, "root.img"), disk).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("qemu-img: %v\n%s", err, out)
	}
	console := filepath.Join(runDir, "console.log")
	start := time.Now()
	fmt.Printf("vm-test: booting the guest (TCG: about a minute), console in %s\n", console)
	qctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	q := exec.CommandContext(qctx, "qemu-system-x86_64",
		"-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max", "-smp", "2", "-m", "2048",
		"-display", "none", "-monitor", "none", "-serial", "file:"+console,
		"-kernel", filepath.Join(vmDir, "vmlinuz"), "-initrd", filepath.Join(vmDir, "initrd.img"),
		"-append", "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 net.ifnames=0",
		"-drive", "file="+disk+",format=qcow2,if=virtio",
		"-virtfs", "local,path="+share+",mount_tag=share,security_model=none,id=share",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0")
	out, qerr := q.CombinedOutput()
	elapsed := time.Since(start).Round(time.Second)
	if qctx.Err() != nil {
		return 0, fmt.Errorf("the guest did not finish within %s (console: %s)", timeout, console)
	}
	if qerr != nil {
		return 0, fmt.Errorf("qemu: %v\n%s", qerr, out)
	}

	passed, failed, skipped, err := score(filepath.Join(results, "guest.log"))
	if err != nil {
		return 0, fmt.Errorf("%w (console: %s)", err, console)
	}
	for _, log := range []string{"guest-reboot-prepare.log", "guest-after-reboot.log"} {
		if _, err := os.Stat(filepath.Join(results, log)); err != nil {
			continue
		}
		p, f, s, err := score(filepath.Join(results, log))
		if err != nil {
			return 0, fmt.Errorf("%s: %w (console: %s)", log, err, console)
		}
		passed, failed, skipped = append(passed, p...), append(failed, f...), append(skipped, s...)
	}
	sort.Strings(passed)
	code := 0
	expected, err := ratchet.ReadExpected(filepath.Join(moduleDir, "test", "vm", "expected-pass.txt"))
	if err != nil {
		return 0, err
	}
	focusRE, err := regexp.Compile(focus)
	if err != nil {
		return 0, fmt.Errorf("VM_FOCUS: %w", err)
	}
	for name := range expected {
		if focus != "" && !focusRE.MatchString(name) {
			continue // not in this slice
		}
		if !contains(passed, name) {
			fmt.Printf("vm-test: expected to pass, did not: %s\n", name)
			code = 1
		}
	}
	for _, name := range passed {
		if !expected[name] {
			fmt.Printf("vm-test: newly passing (add it to test/vm/expected-pass.txt): %s\n", name)
		}
	}
	for _, name := range failed {
		fmt.Printf("vm-test: FAIL %s\n", name)
	}
	if len(failed) > 0 {
		code = 1
	}
	if focus == "" {
		// critest in the guest, scored against the host's ratchet; what the time bound left
		// out is not counted against it (a focused score), and said.
		results, err := ratchet.ReadReport(filepath.Join(results, "critest.xml"))
		if err != nil {
			fmt.Printf("vm-test: no critest report: %v\n", err)
			code = 1
		} else {
			expected, err := ratchet.ReadExpected(filepath.Join(moduleDir, "test", "conformance", "expected-pass.txt"))
			if err != nil {
				return 0, err
			}
			if ratchet.Score(os.Stdout, "vm-test critest", results, expected, critestSkips, true) != 0 {
				code = 1
			}
			fmt.Printf("vm-test critest: %d of the %d expected passes ran within %s\n", ranExpected(results, expected), len(expected), critestTimeout)
		}
	}
	fmt.Printf("vm-test: guest run in %s; output in %s\n", elapsed, results)
	fmt.Printf("vm-test: %d passed, %d failed, %d skipped\n", len(passed), len(failed), len(skipped))
	return code, nil
}

// guestScript is run.sh, which the guest runs at every boot. In the first boot it puts berth on
// the guest as `make install` laid it out, starts berth.service, runs the guest tests, critest
// (bounded by critestTimeout) and TestRebootPrepare, and keeps what they and berthd logged;
// when TestRebootPrepare passed, it reboots the guest, and in the second boot (berth and the
// kubelet started by systemd, as on any node) it runs TestRebootRecreates. Then it powers the
// guest off. A focused run (VM_FOCUS) runs the guest tests it names only.
func guestScript(focus, critestSkip string) string {
	full := "0"
	if focus == "" {
		focus, full = "^Test[^R]", "1" // all but the reboot's two, which run in their places
	}
	return `#!/bin/bash
S=/mnt/share
R=$S/results
phase=before-reboot
[ -e /var/lib/vm-test/rebooted ] && phase=after-reboot
exec >>$R/run-$phase.log 2>&1
set -x
export BERTH_VM_GUEST=1 BERTH_VM_PHASE=$phase PATH=/opt/berth/bin:$PATH
if [ $phase = before-reboot ]; then
	cp -a $S/root/. /
	systemctl daemon-reload
	time systemctl start berth
	systemctl show berth -p Type -p ActiveState -p MainPID -p WatchdogUSec -p Delegate -p KillMode >$R/berth-unit.txt
	stat -f -c %T /sys/fs/cgroup >$R/cgroupfs.txt
	$S/vm.test -test.v -test.timeout 40m -test.run '` + focus + `' >$R/guest.log 2>&1
	if [ ` + full + ` = 1 ]; then
		date >$R/critest.start
		critest --runtime-endpoint unix:///run/berth/berth.sock --image-endpoint unix:///run/berth/berth.sock \
			-ginkgo.junit-report=$R/critest.xml -ginkgo.no-color -ginkgo.timeout=` + critestTimeout.String() + ` \
			-ginkgo.skip='` + critestSkip + `' >$R/critest.log 2>&1
		date >$R/critest.end
		$S/vm.test -test.v -test.timeout 20m -test.run '^TestRebootPrepare$' >$R/guest-reboot-prepare.log 2>&1
	fi
	journalctl -u berth --no-pager >$R/berthd.log
	cp /run/berth/containerd/containerd.log $R/ 2>/dev/null
	systemd-cgls --no-pager >$R/cgls.txt 2>&1
	if grep -q '^--- PASS: TestRebootPrepare' $R/guest-reboot-prepare.log 2>/dev/null; then
		mkdir -p /var/lib/vm-test && touch /var/lib/vm-test/rebooted
		sync
		touch /run/vm-test-power
		systemctl --no-block reboot
		exit 0
	fi
else
	for i in $(seq 300); do systemctl is-active -q berth && break; sleep 1; done
	systemctl status berth kubelet --no-pager >$R/units-after-reboot.txt 2>&1
	$S/vm.test -test.v -test.timeout 20m -test.run '^TestRebootRecreates$' >$R/guest-after-reboot.log 2>&1
	journalctl -u berth -b --no-pager >$R/berthd-after-reboot.log
	journalctl -u kubelet -b --no-pager >$R/kubelet-after-reboot.log
fi
sync
touch /run/vm-test-power
systemctl --no-block poweroff
`
}

// critestTimeout bounds critest in the guest (TCG makes every process start 30-40 times
// slower than on the host): what it has not run by then is reported as left out.
const critestTimeout = 25 * time.Minute

var resultLine = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+)`)

// score reads the go test -v output of the guest tests: the top-level results.
func score(path string) (passed, failed, skipped []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("no guest test output: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := resultLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		switch m[1] {
		case "PASS":
			passed = append(passed, m[2])
		case "FAIL":
			failed = append(failed, m[2])
		case "SKIP":
			skipped = append(skipped, m[2])
		}
	}
	if len(passed)+len(failed)+len(skipped) == 0 {
		return nil, nil, nil, errors.New("the guest tests reported nothing")
	}
	sort.Strings(passed)
	return passed, failed, skipped, sc.Err()
}

// critestSkips are the specs test/conformance skips on purpose, skipped in the guest too.
var critestSkips []ratchet.Skip

// ranExpected counts the expected passes that ran (passed or not).
func ranExpected(results []ratchet.Result, expected map[string]bool) int {
	n := 0
	for _, r := range results {
		if expected[r.Name] && r.Outcome != ratchet.Skipped {
			n++
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
