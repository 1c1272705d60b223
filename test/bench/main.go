// Command bench measures berth against containerd's own CRI plugin on this machine, in one run:
// the same containerd and runc, the same images from the same loopback registry, driven through
// the same CRI client. It prints each figure for both with the ratio berth/containerd, and writes
// them as JSON (BENCH_JSON, default bin/bench.json). It asserts nothing: tests do that.
// BENCH_CPUPROFILE=file saves a CPU profile of berthd while it starts pods 8 at a time, and
// BENCH_HEAPPROFILE=file its heap profile with 30 running pods (for go tool pprof);
// BENCH_BERTHD_LOG=file keeps berthd's (debug) log.
//
// Figures: berthd cold start to first answered Version; the cold pull of a 3-layer image; pod
// lifecycle one at a time (30 pods) and 8 at a time (80 pods, with the node CPU time it took);
// node memory and the runtime's process memory with 30 running pods; ExecSync latency; List
// calls with 100 pods; a load round of 50 pods at once.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

// figure is one measurement for both runtimes; lower is better for every figure.
type figure struct {
	Name       string  `json:"name"`
	Unit       string  `json:"unit"`
	Berth      float64 `json:"berth"`
	Containerd float64 `json:"containerd"`
	Ratio      float64 `json:"ratio"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// bench is one run: both runtimes, the figures so far and what later sections need.
type bench struct {
	tmp         string
	d           *daemon.Daemon
	berth, ctrd *target
	conflist    []byte
	debugAddr   string
	figures     []figure
	// breakdown is berth's time to RUNNING by step (the sequential section).
	breakdown []step
}

func (b *bench) add(name, unit string, berth, ctrd float64) {
	b.figures = append(b.figures, figure{name, unit, berth, ctrd, berth / ctrd})
}

func (b *bench) both() []*target { return []*target{b.berth, b.ctrd} }

// sections run in this order; BENCH_SECTIONS=a,b runs only those (default: all).
type section struct {
	name string
	run  func(*bench) error
}

var sections = []section{
	{"pull", (*bench).pulls},
	{"sequential", (*bench).sequential},
	{"shared-pid", (*bench).sharedPID},
	{"steady", (*bench).steady},
	{"concurrent", (*bench).concurrent},
	{"load", (*bench).load},
	{"checkpoint", (*bench).checkpoint},
	{"kubelet", (*bench).kubelet},
}

func run() error {
	want := map[string]bool{}
	if s := os.Getenv("BENCH_SECTIONS"); s != "" {
		for _, name := range strings.Split(s, ",") {
			if !slices.ContainsFunc(sections, func(sec section) bool { return sec.name == name }) {
				return fmt.Errorf("BENCH_SECTIONS: no section %q", name)
			}
			want[name] = true
		}
	}
	tmp, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	reg, err := serveImages(tmp)
	if err != nil {
		return err
	}
	defer reg.Close()
	hosts := filepath.Join(tmp, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		return err
	}
	b := &bench{tmp: tmp}

	// berthd gets a pod network of its own, as containerd's CRI has.
	cniDir := filepath.Join(tmp, "berth-net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}
	b.conflist = []byte(daemon.CNIConflist("berth-bench", "berthbench0", "10.79.0.0/16"))
	if err := os.WriteFile(filepath.Join(cniDir, "10-bench.conflist"), b.conflist, 0o644); err != nil {
		return err
	}

	// Cold start: from exec to the first answered Version.
	if b.debugAddr, err = freeAddress(); err != nil {
		return err
	}
	start := time.Now()
	d, err := daemon.Start("--registry-config-dir", hosts, "--cni-conf-dir", cniDir, "--debug-address", b.debugAddr)
	if err != nil {
		return err
	}
	defer d.Cleanup()
	if path := os.Getenv("BENCH_BERTHD_LOG"); path != "" {
		defer func() { os.WriteFile(path, []byte(d.Logs()), 0o644) }()
	}
	b.d = d
	berthStart := time.Since(start)
	start = time.Now()
	c, err := daemon.StartContainerdCRI(hosts)
	if err != nil {
		return err
	}
	defer c.Cleanup()
	ctrdImages, ctrdRuntime, err := dial(c.Endpoint())
	if err != nil {
		return err
	}
	if err := waitVersion(ctrdRuntime); err != nil {
		return err
	}
	b.add("cold start to first Version", "ms", ms(berthStart), ms(time.Since(start)))

	b.berth = &target{name: "berth", rs: d.Runtime, is: d.Image, endpoint: d.Endpoint(), shimSocket: filepath.Join(d.State, "containerd", "containerd.sock"),
		daemons: func() []int { return []int{d.Pid(), d.ContainerdPid()} }, logDir: filepath.Join(tmp, "logs-berth")}
	b.ctrd = &target{name: "containerd", rs: ctrdRuntime, is: ctrdImages, endpoint: c.Endpoint(), shimSocket: c.Socket,
		daemons: func() []int { return []int{c.Pid()} }, logDir: filepath.Join(tmp, "logs-containerd")}
	for _, sec := range sections {
		if len(want) > 0 && !want[sec.name] {
			continue
		}
		if sec.name != "pull" {
			if err := b.pullWorkloadImages(); err != nil {
				return err
			}
		}
		if err := sec.run(b); err != nil {
			// What was measured before is still worth printing.
			b.report()
			return fmt.Errorf("%s: %w", sec.name, err)
		}
	}
	return b.report()
}

// pullWorkloadImages pulls what the pods run (once): busybox, and the pause image
// containerd's CRI needs.
func (b *bench) pullWorkloadImages() error {
	for _, t := range b.both() {
		for _, ref := range []string{busyboxImage, "registry.k8s.io/pause:3.10.2"} {
			if st, err := t.is.ImageStatus(context.Background(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err == nil && st.Image != nil {
				continue
			}
			if _, err := t.is.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
				return fmt.Errorf("%s: pull %s: %w", t.name, ref, err)
			}
		}
	}
	return nil
}

// pulls: cold pulls of a 3- and a 10-layer image, and of four different images at once. The two
// runtimes take turns, round by round (which goes first alternates), so that the VM's drift
// over a minute falls on both alike.
func (b *bench) pulls() error {
	const pulls = 10
	for _, layers := range []int{3, 10} {
		ref := images.BenchPullLayers[layers]
		took, err := b.inTurns(pulls, func(t *target) ([]time.Duration, error) {
			d, err := coldPull(t.is, ref)
			return []time.Duration{d}, err
		})
		if err != nil {
			return err
		}
		bp, cp := took["berth"], took["containerd"]
		b.add(fmt.Sprintf("cold pull of a %d-layer image, p50", layers), "ms", ms(percentile(bp, 50)), ms(percentile(cp, 50)))
		b.add(fmt.Sprintf("cold pull of a %d-layer image, max", layers), "ms", ms(percentile(bp, 100)), ms(percentile(cp, 100)))
	}
	const rounds = 5
	n := len(images.BenchConcurrentPulls)
	spent := map[string]map[int]time.Duration{}
	took, err := b.inTurns(rounds, func(t *target) ([]time.Duration, error) {
		if spent[t.name] == nil {
			spent[t.name] = map[int]time.Duration{}
		}
		before := t.cpuByDaemon()
		d, err := concurrentPulls(t.is, images.BenchConcurrentPulls)
		addCPUSince(spent[t.name], before)
		return d, err
	})
	if err != nil {
		return err
	}
	daemonCPU := map[string]float64{}
	for _, t := range b.both() {
		daemonCPU[t.name] = t.printCPUByDaemon(fmt.Sprintf("%d pulls at once", n), "image", spent[t.name], float64(rounds*n))
	}
	b.add(fmt.Sprintf("cold pulls of %d different images at once, per image p50", n), "ms", ms(percentile(took["berth"], 50)), ms(percentile(took["containerd"], 50)))
	b.add(fmt.Sprintf("cold pulls of %d different images at once, daemon CPU per image", n), "ms", daemonCPU["berth"], daemonCPU["containerd"])
	return nil
}

// inTurns runs measure rounds times for each runtime, the runtimes taking turns, and returns
// what it measured by runtime name.
func (b *bench) inTurns(rounds int, measure func(*target) ([]time.Duration, error)) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	for i := range rounds {
		order := b.both()
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, t := range order {
			d, err := measure(t)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			out[t.name] = append(out[t.name], d...)
		}
	}
	return out, nil
}

func toRunning(l lifecycle) time.Duration { return l.toRunning }

// sequential: kubelet-shaped pods one at a time; then the floor, with berth's pods still
// running (runc is timed with the bundle of one of its containers, in that pod's namespaces).
func (b *bench) sequential() error {
	const n = 30
	seq := map[string][]lifecycle{}
	var fl floor
	var berthPods []pod
	for _, t := range b.both() {
		pods, lcs, _, err := t.startPods(n, 1, kubeletShaped)
		if err == nil && t == b.berth {
			berthPods = pods
			if fl, err = measureFloor(b.tmp, b.d, b.conflist, pods[0].container, n); err != nil {
				err = fmt.Errorf("floor: %w", err)
			}
		}
		if err == nil {
			err = t.removePods(pods, lcs, 1)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		seq[t.name] = lcs
	}
	for _, step := range []struct {
		name string
		get  func(lifecycle) time.Duration
	}{
		{"RunPodSandbox", func(l lifecycle) time.Duration { return l.run }},
		{"CreateContainer", func(l lifecycle) time.Duration { return l.create }},
		{"StartContainer", func(l lifecycle) time.Duration { return l.start }},
		{"time to RUNNING", toRunning},
		{"StopPodSandbox", func(l lifecycle) time.Duration { return l.stop }},
		{"RemovePodSandbox", func(l lifecycle) time.Duration { return l.remove }},
	} {
		bd, cd := durations(seq["berth"], step.get), durations(seq["containerd"], step.get)
		for _, p := range []int{50, 90, 100} {
			label := fmt.Sprintf("p%d", p)
			if p == 100 {
				label = "max"
			}
			b.add(fmt.Sprintf("1 at a time: %s %s", step.name, label), "ms", ms(percentile(bd, p)), ms(percentile(cd, p)))
		}
	}
	// The floor is the same for both: it is shown in both columns.
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"floor: CNI ADD of the bench network p50", percentile(fl.cniAdd, 50)},
		{"floor: pod shim start p50", percentile(fl.shimStart, 50)},
		{"floor: CNI ADD and shim start at once p50", percentile(fl.together, 50)},
		{"floor: runc create p50", percentile(fl.runcCreate, 50)},
		{"floor: runc start p50", percentile(fl.runcStart, 50)},
		{"floor: time to RUNNING p50 (CNI and shim at once or in turn, whichever is shorter; runc)", fl.p50()},
		{"floor: the shim's task create alone (runc create inside) p50", percentile(fl.taskCreate, 50)},
		{"floor: the shim's task start alone (runc start inside) p50", percentile(fl.taskStart, 50)},
		{"floor with the shim's task calls: time to RUNNING p50", fl.withShimTasks()},
		{"floor: containerd's snapshot prepare and container record alone p50", percentile(fl.ctrdRecord, 50)},
		{"floor: containerd's task create alone (in the pod's shim) p50", percentile(fl.ctrdCreate, 50)},
		{"floor: containerd's task start alone p50", percentile(fl.ctrdStart, 50)},
		{"floor through containerd: time to RUNNING p50", fl.withContainerd()},
	} {
		b.add(f.name, "ms", ms(f.d), ms(f.d))
	}
	toRunningP50 := map[string]time.Duration{}
	for name, lcs := range seq {
		toRunningP50[name] = percentile(durations(lcs, toRunning), 50)
	}
	b.add("1 at a time: time to RUNNING above the floor, p50", "ms",
		ms(toRunningP50["berth"]-fl.p50()), ms(toRunningP50["containerd"]-fl.p50()))
	b.add("1 at a time: time to RUNNING above the floor with the shim's task calls, p50", "ms",
		ms(toRunningP50["berth"]-fl.withShimTasks()), ms(toRunningP50["containerd"]-fl.withShimTasks()))
	b.add("1 at a time: time to RUNNING above the floor through containerd, p50", "ms",
		ms(toRunningP50["berth"]-fl.withContainerd()), ms(toRunningP50["containerd"]-fl.withContainerd()))
	b.breakdown = overheadByStep(b.d.Logs(), berthPods, seq["berth"], fl)
	b.breakdown = append([]step{{"time to RUNNING", percentile(durations(seq["berth"], toRunning), 50)}, {"floor", fl.p50()}}, b.breakdown...)
	return nil
}

// sharedPID: pods with a shared PID namespace (an infra process each), one at a time.
func (b *bench) sharedPID() error {
	const n = 30
	shared := map[string][]lifecycle{}
	for _, t := range b.both() {
		pods, lcs, _, err := t.startPods(n, 1, sharedPID)
		if err == nil {
			err = t.removePods(pods, lcs, 1)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		shared[t.name] = lcs
	}
	run := func(l lifecycle) time.Duration { return l.run }
	b.add("shared PID, 1 at a time: RunPodSandbox p50", "ms", ms(percentile(durations(shared["berth"], run), 50)), ms(percentile(durations(shared["containerd"], run), 50)))
	b.add("shared PID, 1 at a time: time to RUNNING p50", "ms", ms(percentile(durations(shared["berth"], toRunning), 50)), ms(percentile(durations(shared["containerd"], toRunning), 50)))
	b.add("shared PID, 1 at a time: time to RUNNING p90", "ms", ms(percentile(durations(shared["berth"], toRunning), 90)), ms(percentile(durations(shared["containerd"], toRunning), 90)))
	return nil
}

func mib(v float64) float64 { return v / (1 << 20) }

// steady: 30 running pods: memory, ExecSync; then 100: List calls.
func (b *bench) steady() error {
	type steady struct {
		perPodNode, perPodProcs, daemons float64
		perPodProcsAnon, daemonsAnon     float64
		perPodPSS                        float64
		exec                             []time.Duration
		listC, listP                     []time.Duration
	}
	st := map[string]steady{}
	for _, t := range b.both() {
		var s steady
		goruntime.GC()
		before := memAvailable()
		pods, lcs, _, err := t.startPods(30, 8, kubeletShaped)
		if err != nil {
			return fmt.Errorf("%s: 30 pods: %w", t.name, err)
		}
		time.Sleep(2 * time.Second) // let the shims settle
		after := memAvailable()
		daemons, total := t.processRSS()
		daemonsAnon, totalAnon := t.processAnon()
		daemonsPSS, totalPSS := t.processMemory(pss)
		for _, pid := range t.daemons() {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			fmt.Fprintf(os.Stderr, "bench: %s with 30 pods: %s RSS %.1f MiB, anonymous %.1f MiB\n",
				t.name, strings.TrimSpace(string(comm)), mib(float64(rss(pid))), mib(float64(rssAnon(pid))))
		}
		s.perPodNode = float64(int64(before)-int64(after)) / 30
		s.perPodProcs = float64(total-daemons) / 30
		s.daemons = float64(daemons)
		s.perPodProcsAnon = float64(totalAnon-daemonsAnon) / 30
		s.daemonsAnon = float64(daemonsAnon)
		s.perPodPSS = float64(totalPSS) / 30
		fmt.Fprintf(os.Stderr, "bench: %s with 30 pods: PSS per pod %.2f MiB, of which shims and infra %.2f\n",
			t.name, mib(float64(totalPSS)/30), mib(float64(totalPSS-daemonsPSS)/30))
		if path := os.Getenv("BENCH_HEAPPROFILE"); path != "" && t == b.berth {
			if err := heapProfile(b.debugAddr, path); err != nil {
				fmt.Fprintln(os.Stderr, "bench: heap profile:", err)
			}
		}
		if s.exec, err = t.execSyncs(pods[0].container, 200); err != nil {
			return fmt.Errorf("%s: ExecSync: %w", t.name, err)
		}
		more, moreLcs, _, err := t.startPods(70, 8, kubeletShaped)
		pods, lcs = append(pods, more...), append(lcs, moreLcs...)
		if err == nil {
			s.listC, s.listP, err = t.lists(50)
		}
		if rerr := t.removePods(pods, lcs, 8); err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("%s: 100 pods: %w", t.name, err)
		}
		st[t.name] = s
	}
	b.add("node memory per running pod (MemAvailable)", "MiB", mib(st["berth"].perPodNode), mib(st["containerd"].perPodNode))
	b.add("shims + infra RSS per running pod", "MiB", mib(st["berth"].perPodProcs), mib(st["containerd"].perPodProcs))
	b.add("daemon RSS with 30 pods (berthd+containerd)", "MiB", mib(st["berth"].daemons), mib(st["containerd"].daemons))
	b.add("shims + infra anonymous memory per running pod (RssAnon)", "MiB", mib(st["berth"].perPodProcsAnon), mib(st["containerd"].perPodProcsAnon))
	b.add("daemon anonymous memory with 30 pods (RssAnon)", "MiB", mib(st["berth"].daemonsAnon), mib(st["containerd"].daemonsAnon))
	b.add("runtime PSS per running pod, daemons included (30 pods)", "MiB", mib(st["berth"].perPodPSS), mib(st["containerd"].perPodPSS))
	b.add("ExecSync `true` p50", "ms", ms(percentile(st["berth"].exec, 50)), ms(percentile(st["containerd"].exec, 50)))
	b.add("ExecSync `true` p99", "ms", ms(percentile(st["berth"].exec, 99)), ms(percentile(st["containerd"].exec, 99)))
	b.add("ListContainers, 100 pods, p50", "ms", ms(percentile(st["berth"].listC, 50)), ms(percentile(st["containerd"].listC, 50)))
	b.add("ListPodSandbox, 100 pods, p50", "ms", ms(percentile(st["berth"].listP, 50)), ms(percentile(st["containerd"].listP, 50)))
	return nil
}

// concurrent: 80 kubelet-shaped pods, 8 at a time, with the node's CPU time they took.
// BENCH_CPUPROFILE=file saves a CPU profile of berthd meanwhile.
func (b *bench) concurrent() error {
	const n = 80
	rate := map[string]float64{}
	conc := map[string][]lifecycle{}
	cpu := map[string]float64{}
	tasks := map[string]float64{}
	daemonCPU := map[string]float64{}
	for _, t := range b.both() {
		before, forks, daemonsBefore := nodeCPU(), nodeForks(), t.cpuByDaemon()
		var profiled chan error
		if path := os.Getenv("BENCH_CPUPROFILE"); path != "" && t == b.berth {
			profiled = make(chan error, 1)
			go func() { profiled <- cpuProfile(b.debugAddr, path, 6*time.Second) }()
		}
		pods, lcs, wall, err := t.startPods(n, 8, kubeletShaped)
		if profiled != nil {
			if perr := <-profiled; perr != nil {
				fmt.Fprintln(os.Stderr, "bench: CPU profile:", perr)
			}
		}
		cpu[t.name] = ms(nodeCPU()-before) / n
		spent := map[int]time.Duration{}
		addCPUSince(spent, daemonsBefore)
		daemonCPU[t.name] = t.printCPUByDaemon("8 at a time", "pod", spent, n)
		tasks[t.name] = float64(nodeForks()-forks) / n
		if err == nil {
			err = t.removePods(pods, lcs, 8)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		rate[t.name], conc[t.name] = n/wall.Seconds(), lcs
	}
	b.add("8 at a time: pods to RUNNING per second (higher is better)", "/s", rate["berth"], rate["containerd"])
	b.add("8 at a time: node CPU time per pod started", "ms", cpu["berth"], cpu["containerd"])
	b.add("8 at a time: daemon CPU time per pod started (berthd+containerd)", "ms", daemonCPU["berth"], daemonCPU["containerd"])
	b.add("8 at a time: processes and threads created per pod started", "", tasks["berth"], tasks["containerd"])
	b.add("8 at a time: time to RUNNING p50", "ms", ms(percentile(durations(conc["berth"], toRunning), 50)), ms(percentile(durations(conc["containerd"], toRunning), 50)))
	b.add("8 at a time: time to RUNNING p90", "ms", ms(percentile(durations(conc["berth"], toRunning), 90)), ms(percentile(durations(conc["containerd"], toRunning), 90)))
	return nil
}

// load: a round of 50 pods at once through start, probes and removal.
func (b *bench) load() error {
	type round struct {
		wall                       time.Duration
		peakDaemons, peakProcesses uint64
	}
	rounds := map[string]round{}
	for _, t := range b.both() {
		var r round
		var err error
		if r.wall, r.peakDaemons, r.peakProcesses, err = t.loadRound(50); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		rounds[t.name] = r
	}
	b.add("load round: 50 pods at once, 3 probes each, removed", "s", rounds["berth"].wall.Seconds(), rounds["containerd"].wall.Seconds())
	b.add("load round: peak daemon RSS", "MiB", mib(float64(rounds["berth"].peakDaemons)), mib(float64(rounds["containerd"].peakDaemons)))
	b.add("load round: peak RSS of daemons, shims and infra", "MiB", mib(float64(rounds["berth"].peakProcesses)), mib(float64(rounds["containerd"].peakProcesses)))
	return nil
}

// report prints the figures and berth's steps, and writes them as JSON.
func (b *bench) report() error {
	fmt.Printf("%-66s %14s %14s %8s\n", "figure", "berth", "containerd", "ratio")
	for _, f := range b.figures {
		fmt.Printf("%-66s %9.1f %-4s %9.1f %-4s %8.2f\n", f.Name, f.Berth, f.Unit, f.Containerd, f.Unit, f.Ratio)
	}
	if len(b.breakdown) > 0 {
		fmt.Println()
		fmt.Printf("%-66s %9s\n", "berth, one kubelet-shaped pod at a time (p50 of each step, debug log)", "ms")
		for _, st := range b.breakdown {
			fmt.Printf("%-66s %9.2f\n", st.Name, ms(st.P50))
		}
	}
	out := os.Getenv("BENCH_JSON")
	if out == "" {
		out = filepath.Join("bin", "bench.json")
	}
	js, _ := json.MarshalIndent(map[string]any{"time": time.Now().UTC(), "figures": b.figures, "berth_steps": b.breakdown}, "", "  ")
	if err := os.WriteFile(out, js, 0o644); err != nil {
		return err
	}
	fmt.Println("bench: figures written to", out)
	return nil
}

// concurrentPulls pulls every image of refs at once and returns each pull's time.
func concurrentPulls(is runtimeapi.ImageServiceClient, refs []string) ([]time.Duration, error) {
	took := make([]time.Duration, len(refs))
	errs := make(chan error, len(refs))
	for i, ref := range refs {
		go func() {
			var err error
			took[i], err = coldPull(is, ref)
			errs <- err
		}()
	}
	for range refs {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	return took, nil
}

// coldPull times the pull of ref, then removes it.
func coldPull(is runtimeapi.ImageServiceClient, ref string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	resp, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("pull %s: %w", ref, err)
	}
	_, err = is.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: resp.ImageRef}})
	return took, err
}

func serveImages(tmp string) (*images.Registry, error) {
	busybox, err := images.BusyboxPath()
	if err != nil {
		return nil, err
	}
	testbin, err := images.BuildTestBin(".", tmp)
	if err != nil {
		return nil, err
	}
	cat, err := images.Catalog(images.Sources{Busybox: busybox, TestBin: testbin})
	if err != nil {
		return nil, err
	}
	bench, err := images.BenchCatalog(images.Sources{Busybox: busybox, TestBin: testbin})
	if err != nil {
		return nil, err
	}
	maps.Copy(cat, bench)
	reg, err := images.StartRegistry("", nil)
	if err != nil {
		return nil, err
	}
	return reg, reg.Push(context.Background(), cat)
}

func dial(endpoint string) (runtimeapi.ImageServiceClient, runtimeapi.RuntimeServiceClient, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewImageServiceClient(conn), runtimeapi.NewRuntimeServiceClient(conn), nil
}

func waitVersion(rs runtimeapi.RuntimeServiceClient) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := rs.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func durations(ls []lifecycle, get func(lifecycle) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ls))
	for i, l := range ls {
		out[i] = get(l)
	}
	return out
}

// freeAddress is a loopback host:port nothing listens on.
func freeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cpuProfile saves a CPU profile of berthd (its /debug/pprof/ on addr) taken for d to path.
func cpuProfile(addr, path string, d time.Duration) error {
	return saveProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), path)
}

// heapProfile saves berthd's heap profile to path, and the same as text with the Go runtime's
// memory statistics to path.txt.
func heapProfile(addr, path string) error {
	if err := saveProfile(fmt.Sprintf("http://%s/debug/pprof/heap", addr), path); err != nil {
		return err
	}
	return saveProfile(fmt.Sprintf("http://%s/debug/pprof/heap?debug=1", addr), path+".txt")
}

func saveProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
