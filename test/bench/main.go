// Command bench measures berth against containerd's own CRI plugin on this machine, in one run:
// the same containerd and runc, the same images from the same loopback registry, driven through
// the same CRI client. It prints each figure for both with the ratio berth/containerd, and writes
// them as JSON (BENCH_JSON, default bin/bench.json). It asserts nothing: tests do that.
// BENCH_CPUPROFILE=file saves a CPU profile of berthd while it starts pods 8 at a time (for
// go tool pprof).
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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

const pullImage = "docker.io/berth/bench-pull:3"

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

func run() error {
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

	var figures []figure
	add := func(name, unit string, b, c float64) {
		figures = append(figures, figure{name, unit, b, c, b / c})
	}

	// berthd gets a pod network of its own, as containerd's CRI has.
	cniDir := filepath.Join(tmp, "berth-net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-bench.conflist"), []byte(daemon.CNIConflist("berth-bench", "berthbench0", "10.79.0.0/16")), 0o644); err != nil {
		return err
	}

	// Cold start: from exec to the first answered Version.
	debugAddr, err := freeAddress()
	if err != nil {
		return err
	}
	start := time.Now()
	d, err := daemon.Start("--registry-config-dir", hosts, "--cni-conf-dir", cniDir, "--debug-address", debugAddr)
	if err != nil {
		return err
	}
	defer d.Cleanup()
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
	add("cold start to first Version", "ms", ms(berthStart), ms(time.Since(start)))

	const pulls = 10
	bp, err := coldPulls(d.Image, pulls)
	if err != nil {
		return fmt.Errorf("berth: %w", err)
	}
	cp, err := coldPulls(ctrdImages, pulls)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	add("cold pull of a 3-layer image, p50", "ms", ms(percentile(bp, 50)), ms(percentile(cp, 50)))
	add("cold pull of a 3-layer image, max", "ms", ms(percentile(bp, 100)), ms(percentile(cp, 100)))

	berth := &target{name: "berth", rs: d.Runtime, is: d.Image, shimSocket: filepath.Join(d.State, "containerd", "containerd.sock"),
		daemons: func() []int { return []int{d.Pid(), d.ContainerdPid()} }, logDir: filepath.Join(tmp, "logs-berth")}
	ctrd := &target{name: "containerd", rs: ctrdRuntime, is: ctrdImages, shimSocket: c.Socket,
		daemons: func() []int { return []int{c.Pid()} }, logDir: filepath.Join(tmp, "logs-containerd")}
	for _, t := range []*target{berth, ctrd} {
		for _, ref := range []string{busyboxImage, "registry.k8s.io/pause:3.10.1"} {
			if _, err := t.is.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
				return fmt.Errorf("%s: pull %s: %w", t.name, ref, err)
			}
		}
	}

	// One pod at a time.
	const sequential = 30
	seq := map[string][]lifecycle{}
	for _, t := range []*target{berth, ctrd} {
		pods, lcs, _, err := t.startPods(sequential, 1)
		if err == nil {
			err = t.removePods(pods, lcs, 1)
		}
		if err != nil {
			return fmt.Errorf("%s: sequential pods: %w", t.name, err)
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
		{"time to RUNNING", func(l lifecycle) time.Duration { return l.toRunning }},
		{"StopPodSandbox", func(l lifecycle) time.Duration { return l.stop }},
		{"RemovePodSandbox", func(l lifecycle) time.Duration { return l.remove }},
	} {
		b, c := durations(seq["berth"], step.get), durations(seq["containerd"], step.get)
		for _, p := range []int{50, 90, 100} {
			label := fmt.Sprintf("p%d", p)
			if p == 100 {
				label = "max"
			}
			add(fmt.Sprintf("1 at a time: %s %s", step.name, label), "ms", ms(percentile(b, p)), ms(percentile(c, p)))
		}
	}

	// 30 running pods: memory, ExecSync; then 100: List calls.
	type steady struct {
		perPodNode, perPodProcs, daemons float64
		exec                             []time.Duration
		listC, listP                     []time.Duration
	}
	st := map[string]steady{}
	for _, t := range []*target{berth, ctrd} {
		var s steady
		runtime.GC()
		before := memAvailable()
		pods, lcs, _, err := t.startPods(30, 8)
		if err != nil {
			return fmt.Errorf("%s: 30 pods: %w", t.name, err)
		}
		time.Sleep(2 * time.Second) // let the shims settle
		after := memAvailable()
		daemons, total := t.processRSS()
		s.perPodNode = float64(int64(before)-int64(after)) / 30
		s.perPodProcs = float64(total-daemons) / 30
		s.daemons = float64(daemons)
		if s.exec, err = t.execSyncs(pods[0].container, 200); err != nil {
			return fmt.Errorf("%s: ExecSync: %w", t.name, err)
		}
		more, moreLcs, _, err := t.startPods(70, 8)
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
	mib := func(b float64) float64 { return b / (1 << 20) }
	add("node memory per running pod (MemAvailable)", "MiB", mib(st["berth"].perPodNode), mib(st["containerd"].perPodNode))
	add("shims + infra RSS per running pod", "MiB", mib(st["berth"].perPodProcs), mib(st["containerd"].perPodProcs))
	add("daemon RSS with 30 pods (berthd+containerd)", "MiB", mib(st["berth"].daemons), mib(st["containerd"].daemons))
	add("ExecSync `true` p50", "ms", ms(percentile(st["berth"].exec, 50)), ms(percentile(st["containerd"].exec, 50)))
	add("ExecSync `true` p99", "ms", ms(percentile(st["berth"].exec, 99)), ms(percentile(st["containerd"].exec, 99)))
	add("ListContainers, 100 pods, p50", "ms", ms(percentile(st["berth"].listC, 50)), ms(percentile(st["containerd"].listC, 50)))
	add("ListPodSandbox, 100 pods, p50", "ms", ms(percentile(st["berth"].listP, 50)), ms(percentile(st["containerd"].listP, 50)))

	// Eight at a time.
	const concurrent = 80
	rate := map[string]float64{}
	conc := map[string][]lifecycle{}
	cpu := map[string]float64{}
	for _, t := range []*target{berth, ctrd} {
		before := nodeCPU()
		var profiled chan error
		if path := os.Getenv("BENCH_CPUPROFILE"); path != "" && t == berth {
			profiled = make(chan error, 1)
			go func() { profiled <- cpuProfile(debugAddr, path, 6*time.Second) }()
		}
		pods, lcs, wall, err := t.startPods(concurrent, 8)
		if profiled != nil {
			if perr := <-profiled; perr != nil {
				fmt.Fprintln(os.Stderr, "bench: CPU profile:", perr)
			}
		}
		cpu[t.name] = ms(nodeCPU()-before) / concurrent
		if err == nil {
			err = t.removePods(pods, lcs, 8)
		}
		if err != nil {
			return fmt.Errorf("%s: 8 at a time: %w", t.name, err)
		}
		rate[t.name], conc[t.name] = concurrent/wall.Seconds(), lcs
	}
	toRunning := func(l lifecycle) time.Duration { return l.toRunning }
	add("8 at a time: pods to RUNNING per second (higher is better)", "/s", rate["berth"], rate["containerd"])
	add("8 at a time: node CPU time per pod started", "ms", cpu["berth"], cpu["containerd"])
	add("8 at a time: time to RUNNING p50", "ms", ms(percentile(durations(conc["berth"], toRunning), 50)), ms(percentile(durations(conc["containerd"], toRunning), 50)))
	add("8 at a time: time to RUNNING p90", "ms", ms(percentile(durations(conc["berth"], toRunning), 90)), ms(percentile(durations(conc["containerd"], toRunning), 90)))

	// A load round: 50 pods at once through start, probes and removal.
	type round struct {
		wall                       time.Duration
		peakDaemons, peakProcesses uint64
	}
	rounds := map[string]round{}
	for _, t := range []*target{berth, ctrd} {
		var r round
		var err error
		if r.wall, r.peakDaemons, r.peakProcesses, err = t.loadRound(50); err != nil {
			return fmt.Errorf("%s: load round: %w", t.name, err)
		}
		rounds[t.name] = r
	}
	add("load round: 50 pods at once, 3 probes each, removed", "s", rounds["berth"].wall.Seconds(), rounds["containerd"].wall.Seconds())
	add("load round: peak daemon RSS", "MiB", mib(float64(rounds["berth"].peakDaemons)), mib(float64(rounds["containerd"].peakDaemons)))
	add("load round: peak RSS of daemons, shims and infra", "MiB", mib(float64(rounds["berth"].peakProcesses)), mib(float64(rounds["containerd"].peakProcesses)))

	fmt.Printf("%-62s %14s %14s %8s\n", "figure", "berth", "containerd", "ratio")
	for _, f := range figures {
		fmt.Printf("%-62s %9.1f %-4s %9.1f %-4s %8.2f\n", f.Name, f.Berth, f.Unit, f.Containerd, f.Unit, f.Ratio)
	}
	out := os.Getenv("BENCH_JSON")
	if out == "" {
		out = filepath.Join("bin", "bench.json")
	}
	b, _ := json.MarshalIndent(map[string]any{"time": time.Now().UTC(), "figures": figures}, "", "  ")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	fmt.Println("bench: figures written to", out)
	return nil
}

// coldPulls pulls the 3-layer image n times, removing it after each pull so that every pull
// fetches and unpacks all of it.
func coldPulls(is runtimeapi.ImageServiceClient, n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		resp, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: pullImage}})
		out = append(out, time.Since(start))
		if err == nil {
			_, err = is.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: resp.ImageRef}})
		}
		cancel()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
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
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
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
