package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const busyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// target is one runtime under test, driven through its CRI endpoint.
type target struct {
	name string
	rs   runtimeapi.RuntimeServiceClient
	is   runtimeapi.ImageServiceClient
	// daemons are the runtime's own long-lived processes (berthd and its containerd, or
	// containerd); shimSocket is the containerd socket its shims name on their command line.
	daemons    func() []int
	shimSocket string
	// endpoint is the CRI socket (unix://...), for a kubelet.
	endpoint string
	logDir   string
	seq      int
	mu       sync.Mutex
}

// lifecycle is the time of each step of one pod's life.
type lifecycle struct {
	run, create, start, toRunning, stop, remove time.Duration
}

// pod is a running pod with one sleeping container.
type pod struct{ id, container string }

func (t *target) nextName() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	return fmt.Sprintf("bench-%d", t.seq)
}

// shape is how the pods of a measurement are configured.
type shape int

const (
	// kubeletShaped is what the kubelet sends for a pod without shareProcessNamespace: one PID
	// namespace per container (an empty config would mean a shared one).
	kubeletShaped shape = iota
	// sharedPID is a pod with shareProcessNamespace: true, whose PID namespace needs an infra
	// process (berth-pause in berth, the pause container in containerd).
	sharedPID
)

// startPod runs a pod with one sleeping busybox container until it is RUNNING.
func (t *target) startPod(ctx context.Context, sh shape) (pod, lifecycle, error) {
	var l lifecycle
	name := t.nextName()
	pid := runtimeapi.NamespaceMode_CONTAINER
	if sh == sharedPID {
		pid = runtimeapi.NamespaceMode_POD
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: name + "-uid"},
		LogDirectory: filepath.Join(t.logDir, name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: pid, Ipc: runtimeapi.NamespaceMode_POD},
		}},
	}
	begin := time.Now()
	r, err := t.rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return pod{}, l, fmt.Errorf("RunPodSandbox: %w", err)
	}
	l.run = time.Since(begin)
	p := pod{id: r.PodSandboxId}
	step := time.Now()
	c, err := t.rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, SandboxConfig: cfg, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
		Image:    &runtimeapi.ImageSpec{Image: busyboxImage},
		Command:  []string{"sleep", "3600"},
		LogPath:  "sleep.log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}})
	if err != nil {
		return p, l, fmt.Errorf("CreateContainer: %w", err)
	}
	l.create = time.Since(step)
	p.container = c.ContainerId
	step = time.Now()
	if _, err := t.rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: p.container}); err != nil {
		return p, l, fmt.Errorf("StartContainer: %w", err)
	}
	l.start = time.Since(step)
	l.toRunning = time.Since(begin)
	return p, l, nil
}

// removePod stops and removes a pod, timing both.
func (t *target) removePod(ctx context.Context, p pod, l *lifecycle) error {
	step := time.Now()
	if _, err := t.rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		return fmt.Errorf("StopPodSandbox: %w", err)
	}
	l.stop = time.Since(step)
	step = time.Now()
	if _, err := t.rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		return fmt.Errorf("RemovePodSandbox: %w", err)
	}
	l.remove = time.Since(step)
	return nil
}

// startPods starts n pods of shape sh, parallel at a time, and returns them with their
// lifecycles and the wall time it took.
func (t *target) startPods(n, parallel int, sh shape) ([]pod, []lifecycle, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pods, lcs := make([]pod, n), make([]lifecycle, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var err error
			if pods[i], lcs[i], err = t.startPod(ctx, sh); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	wall := time.Since(begin)
	close(errs)
	return pods, lcs, wall, <-errs
}

// removePods stops and removes pods, parallel at a time, filling in their lifecycles.
func (t *target) removePods(pods []pod, lcs []lifecycle, parallel int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	errs := make(chan error, len(pods))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range pods {
		if pods[i].id == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := t.removePod(ctx, pods[i], &lcs[i]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// execSyncs times n ExecSync calls of `true` in a running container.
func (t *target) execSyncs(container string, n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		resp, err := t.rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: container, Cmd: []string{"true"}, Timeout: 10})
		out = append(out, time.Since(start))
		cancel()
		if err != nil {
			return nil, err
		}
		if resp.ExitCode != 0 {
			return nil, fmt.Errorf("ExecSync true: exit %d", resp.ExitCode)
		}
	}
	return out, nil
}

// lists times n ListContainers and n ListPodSandbox calls.
func (t *target) lists(n int) (containers, pods []time.Duration, err error) {
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		_, err = t.rs.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		containers = append(containers, time.Since(start))
		start = time.Now()
		if err == nil {
			_, err = t.rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		}
		pods = append(pods, time.Since(start))
		cancel()
		if err != nil {
			return nil, nil, err
		}
	}
	return containers, pods, nil
}

// processes are the runtime's own processes: its daemons, its shims and the infra processes
// (pause) the shims run; the pods' own workloads are not among them.
func (t *target) processes() []int {
	out := t.daemons()
	shims := map[int]bool{}
	for _, pid := range allPids() {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmd), "containerd-shim") && strings.Contains(string(cmd), t.shimSocket) {
			shims[pid] = true
			out = append(out, pid)
		}
	}
	for _, pid := range allPids() {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if name := strings.TrimSpace(string(comm)); (name == "pause" || name == "berth-pause") && shims[ppid(pid)] {
			out = append(out, pid)
		}
	}
	return out
}

// processRSS sums the resident memory of the runtime's daemons, and of all its processes.
func (t *target) processRSS() (daemons, total uint64) { return t.processMemory(rss) }

// processAnon is processRSS for anonymous memory only: what the processes own, without the
// pages of their executables, which the page cache holds once however many map them.
func (t *target) processAnon() (daemons, total uint64) { return t.processMemory(rssAnon) }

// processMemory sums of (a process's memory figure) over the runtime's daemons, and over all
// its processes.
func (t *target) processMemory(of func(pid int) uint64) (daemons, total uint64) {
	for _, pid := range t.daemons() {
		daemons += of(pid)
	}
	for _, pid := range t.processes() {
		total += of(pid)
	}
	return daemons, total
}

// nodeCPU is the CPU time the whole node has spent busy (user, nice, system, irq, softirq,
// steal) since boot: what starting pods costs, runtime, shims, runc and CNI plugins included.
func nodeCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var ticks uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i > 7 { // idle, iowait; guest time is already in user
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

// nodeForks is the number of processes and threads the node has created since boot (the
// "processes" line of /proc/stat): runc, shims, CNI plugins, infra processes and the threads of
// each.
func nodeForks() uint64 {
	b, _ := os.ReadFile("/proc/stat")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "processes "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func allPids() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// statusField reads a "Name: value kB" field of /proc/<pid>/status.
func statusField(pid int, field string) uint64 {
	return procField(fmt.Sprintf("/proc/%d/status", pid), field)
}

// procField reads the number of a "Name: value [kB]" line of a /proc file (0 if none).
func procField(path, field string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// pss is a process's proportional set size: its resident pages, each shared one divided by the
// number of processes that map it.
func pss(pid int) uint64 { return procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss") << 10 }

func rss(pid int) uint64     { return statusField(pid, "VmRSS") << 10 }
func rssAnon(pid int) uint64 { return statusField(pid, "RssAnon") << 10 }
func ppid(pid int) int       { return int(statusField(pid, "PPid")) }
func memAvailable() uint64   { return procField("/proc/meminfo", "MemAvailable") << 10 }

// loadRound runs n pods at once through start, three ExecSync probes and removal, and returns
// the wall time with the peak RSS of the runtime's daemons and of all its processes meanwhile.
func (t *target) loadRound(n int) (wall time.Duration, peakDaemons, peakTotal uint64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			d, tot := t.processRSS()
			peakDaemons, peakTotal = max(peakDaemons, d), max(peakTotal, tot)
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, l, err := t.startPod(ctx, kubeletShaped)
			if err == nil {
				for range 3 {
					if _, err = t.rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: p.container, Cmd: []string{"true"}, Timeout: 10}); err != nil {
						break
					}
				}
			}
			if p.id != "" {
				if rerr := t.removePod(ctx, p, &l); err == nil {
					err = rerr
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	wall = time.Since(begin)
	close(stop)
	<-sampled
	close(errs)
	for e := range errs {
		if e != nil {
			return wall, peakDaemons, peakTotal, e
		}
	}
	return wall, peakDaemons, peakTotal, nil
}

// processCPU is the CPU time the runtime's daemons, shims and infra processes have spent
// themselves (not their children: runc and CNI plugins, the same for both runtimes).
func (t *target) processCPU() time.Duration { return cpuOf(t.processes()) }

// cpuByDaemon is the CPU time each of the runtime's daemons has spent itself, by pid.
func (t *target) cpuByDaemon() map[int]time.Duration {
	out := map[int]time.Duration{}
	for _, pid := range t.daemons() {
		out[pid] = cpuOf([]int{pid})
	}
	return out
}

// addCPUSince adds to spent the CPU time each daemon has spent since before (cpuByDaemon).
func addCPUSince(spent, before map[int]time.Duration) {
	for pid, was := range before {
		spent[pid] += cpuOf([]int{pid}) - was
	}
}

// printCPUByDaemon prints (on stderr) each daemon's share of spent, per one of n things done, and
// returns their sum per thing.
func (t *target) printCPUByDaemon(what, per string, spent map[int]time.Duration, n float64) float64 {
	var sum time.Duration
	for pid, d := range spent {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		fmt.Fprintf(os.Stderr, "bench: %s %s: %s CPU %.1f ms per %s\n",
			t.name, what, strings.TrimSpace(string(comm)), ms(d)/n, per)
		sum += d
	}
	return ms(sum) / n
}

func cpuOf(pids []int) time.Duration {
	var ticks uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command may hold spaces: the fields counted from after its closing parenthesis.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseUint(f[11], 10, 64) // utime, field 14
			s, _ := strconv.ParseUint(f[12], 10, 64) // stime, field 15
			ticks += u + s
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// removeAll stops and removes every pod the runtime has (what a kubelet left).
func (t *target) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := t.rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, p := range resp.Items {
		t.rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
		t.rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
	}
}
