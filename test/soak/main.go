// Command soak runs pod lifecycles through a real berthd with faults injected, the way an
// operator's soak would, and accounts for everything they could leave behind.
//
// Each cycle is what the kubelet does for a short-lived pod: RunPodSandbox, CreateContainer and
// StartContainer of a container that writes numbered lines, StopPodSandbox, RemovePodSandbox.
// Every 4th pod shares its PID namespace (an infra process); every other pod's cgroup parent is
// made beforehand and removed afterwards by the soak, as the kubelet does, the rest are made by
// runc. One cycle in SOAK_FAULT_EVERY gets a fault: kill -9 of berthd, of the pod's shim, of the
// managed containerd, or of berthd and the shim together, in turn, while each of the five calls
// is in flight, in turn (so every kind meets every call), after a random part of the call's
// usual time. berthd is restarted after each fault (killed, or stopped), and the pod is driven
// to its removal as the kubelet would: a pod still READY gets a container started in it, and one
// that cannot run it must turn NOTREADY, or it is a stuck pod.
//
// At the end, with every pod removed, the host is compared with how it was after a warm-up
// cycle: containerd's containers, tasks, snapshots, leases and content; shims and infra
// processes; namespace pins and mounts; veths, IPs and iptables rules; cgroups in every
// hierarchy; pod and container directories; the CNI cache. And every container log is checked
// to hold line 1, 2, 3... with none missing, repeated or out of order.
//
// It prints "soak: N cycles, F faults, L leaks, G log gaps, S stuck pods" and fails on anything
// but zeros (and on an unexpected error).
//
// Environment: SOAK_CYCLES (default 300), SOAK_FAULT_EVERY (default 3), SOAK_SEED (default 1);
// SOAK_FAULTS and SOAK_RPCS (comma-separated, default all) narrow the faults to some kinds and
// calls, to replay one that failed.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/traces"
)

const (
	soakNetwork = "berth-soak"
	soakBridge  = "berthsoak0"
	// cgroupParent holds every soak pod's cgroup parent.
	cgroupParent = "berth-soak"
	image        = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	// The calls a fault can hit.
	rpcRun, rpcCreate, rpcStart, rpcStop, rpcRemove = "RunPodSandbox", "CreateContainer", "StartContainer", "StopPodSandbox", "RemovePodSandbox"
	// The faults.
	killBerthd, killShim, killContainerd, killBerthdAndShim = "berthd", "shim", "containerd", "berthd+shim"
)

var (
	rpcs       = []string{rpcRun, rpcCreate, rpcStart, rpcStop, rpcRemove}
	faultKinds = []string{killBerthd, killShim, killContainerd, killBerthdAndShim}
	// usual is about how long each call takes here: a fault lands in [0, usual).
	usual = map[string]time.Duration{rpcRun: 60 * time.Millisecond, rpcCreate: 30 * time.Millisecond,
		rpcStart: 80 * time.Millisecond, rpcStop: 60 * time.Millisecond, rpcRemove: 60 * time.Millisecond}
)

func main() {
	s, err := newSoak()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	ok := s.run()
	s.close()
	if !ok {
		os.Exit(1)
	}
}

type fault struct {
	kind, rpc string
	delay     time.Duration
}

type soak struct {
	cycles, faultEvery int
	rng                *rand.Rand
	tmp                string
	reg                *images.Registry
	d                  *daemon.Daemon
	client             *containerd.Client
	logDir             string

	faults, stuck, gaps, logsChecked int
	unexpected                       []string
	byFault                          map[string]int
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// narrow returns the members of all that the comma-separated list in environment variable name
// names, or all when it is unset.
func narrow(name string, all []string) ([]string, error) {
	v := os.Getenv(name)
	if v == "" {
		return all, nil
	}
	var some []string
	for _, w := range strings.Split(v, ",") {
		if !slices.Contains(all, w) {
			return nil, fmt.Errorf("%s: %q is none of %s", name, w, strings.Join(all, ", "))
		}
		some = append(some, w)
	}
	return some, nil
}

func newSoak() (*soak, error) {
	s := &soak{cycles: envInt("SOAK_CYCLES", 300), faultEvery: envInt("SOAK_FAULT_EVERY", 3),
		rng: rand.New(rand.NewSource(int64(envInt("SOAK_SEED", 1)))), byFault: map[string]int{}}
	var err error
	if faultKinds, err = narrow("SOAK_FAULTS", faultKinds); err != nil {
		return nil, err
	}
	if rpcs, err = narrow("SOAK_RPCS", rpcs); err != nil {
		return nil, err
	}
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		return nil, err
	}
	if s.tmp, err = os.MkdirTemp("", "berth-soak-"); err != nil {
		return nil, err
	}
	if s.reg, _, err = images.Serve(moduleDir, s.tmp, "", ""); err != nil {
		return nil, err
	}
	hosts := filepath.Join(s.tmp, "certs.d")
	if err := s.reg.WriteHostsDir(hosts); err != nil {
		return nil, err
	}
	cniDir := filepath.Join(s.tmp, "net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-soak.conflist"), []byte(daemon.CNIConflist(soakNetwork, soakBridge, "10.67.0.0/16")), 0o644); err != nil {
		return nil, err
	}
	s.logDir = filepath.Join(s.tmp, "logs")
	if s.d, err = daemon.Start("--registry-config-dir", hosts, "--cni-conf-dir", cniDir); err != nil {
		return nil, err
	}
	if s.client, err = containerd.New(filepath.Join(s.d.State, "containerd", "containerd.sock"),
		containerd.WithDefaultNamespace("berth"), containerd.WithTimeout(2*time.Second)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.d.Image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		return nil, fmt.Errorf("pull %s: %w", image, err)
	}
	return s, nil
}

func (s *soak) close() {
	if s.client != nil {
		s.client.Close()
	}
	if s.d != nil {
		if b, err := os.ReadFile(filepath.Join(s.d.Dir, "berthd.log")); err == nil {
			if moduleDir, err := images.ModuleRoot(); err == nil {
				os.WriteFile(filepath.Join(moduleDir, "bin", "soak-berthd.log"), b, 0o644)
			}
		}
		s.d.Cleanup()
	}
	if s.reg != nil {
		s.reg.Close()
	}
	exec.Command("ip", "link", "delete", soakBridge).Run()
	os.RemoveAll(filepath.Join("/var/lib/cni/networks", soakNetwork))
	for _, dir := range traces.CgroupDirs(cgroupParent) {
		syscall.Rmdir(dir)
	}
	os.RemoveAll(s.tmp)
}

func (s *soak) run() bool {
	start := time.Now()
	s.cycle(0, nil) // warm-up: the bridge, its iptables chains and the first shim's leftovers
	before := s.host().Settled(nil)
	faultNo := 0
	for i := 1; i <= s.cycles; i++ {
		var f *fault
		if i%s.faultEvery == 0 {
			f = &fault{kind: faultKinds[faultNo%len(faultKinds)], rpc: rpcs[(faultNo/len(faultKinds))%len(rpcs)]}
			f.delay = time.Duration(s.rng.Int63n(int64(usual[f.rpc])))
			faultNo++
		}
		s.cycle(i, f)
		if i%50 == 0 {
			fmt.Printf("soak: %d cycles in %s, %d faults\n", i, time.Since(start).Round(time.Second), s.faults)
		}
	}
	after := s.host().Settled(before)
	leaks := traces.Leaks(os.Stdout, "soak", before, after)
	for _, u := range s.unexpected {
		fmt.Println("soak: unexpected:", u)
	}
	var kinds []string
	for _, k := range traces.SortedKeys(s.byFault) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, s.byFault[k]))
	}
	fmt.Printf("soak: faults: %s; %d container logs checked; %s\n", strings.Join(kinds, ", "), s.logsChecked, time.Since(start).Round(time.Second))
	fmt.Printf("soak: %d cycles, %d faults, %d leaks, %d log gaps, %d stuck pods\n", s.cycles, s.faults, leaks, s.gaps, s.stuck)
	return leaks == 0 && s.gaps == 0 && s.stuck == 0 && len(s.unexpected) == 0
}

// cycle runs one pod's life, with f injected into one of its calls.
func (s *soak) cycle(i int, f *fault) {
	name := fmt.Sprintf("soak-%d", i)
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "soak", Uid: fmt.Sprintf("uid-%d", i)},
		Hostname:     name,
		LogDirectory: filepath.Join(s.logDir, name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/" + cgroupParent + "/" + name,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}},
		},
	}
	if i%4 == 0 {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}
	kubeletParent := i%2 == 1
	if kubeletParent {
		for _, h := range traces.Hierarchies() {
			os.MkdirAll(filepath.Join(h, cfg.Linux.CgroupParent), 0o755)
		}
	}
	os.MkdirAll(cfg.LogDirectory, 0o755)
	var logs []string
	defer func() {
		for _, l := range logs {
			s.checkLog(name, l)
		}
		if kubeletParent {
			// The kubelet removes the pod cgroups it made once the pod is gone; one that still
			// holds a container's cgroup stays and is counted.
			for _, h := range traces.Hierarchies() {
				syscall.Rmdir(filepath.Join(h, cfg.Linux.CgroupParent))
			}
		}
	}()

	var podID string
	err := s.call(f, rpcRun, func(ctx context.Context) error {
		resp, err := s.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err == nil {
			podID = resp.PodSandboxId
		}
		return err
	})
	var ctrID string
	if err == nil {
		logs = append(logs, filepath.Join(cfg.LogDirectory, "app.log"))
		err = s.call(f, rpcCreate, func(ctx context.Context) error {
			resp, err := s.d.Runtime.CreateContainer(ctx, containerRequest(podID, cfg, "app"))
			if err == nil {
				ctrID = resp.ContainerId
			}
			return err
		})
	}
	if err == nil {
		err = s.call(f, rpcStart, func(ctx context.Context) error {
			_, err := s.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctrID})
			return err
		})
	}
	if err == nil {
		time.Sleep(time.Duration(100+s.rng.Intn(150)) * time.Millisecond) // some lines of log
		err = s.call(f, rpcStop, func(ctx context.Context) error {
			_, err := s.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
			return err
		})
	}
	if err == nil {
		err = s.call(f, rpcRemove, func(ctx context.Context) error {
			_, err := s.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
			return err
		})
	}
	if f == nil {
		if err != nil {
			s.unexpected = append(s.unexpected, fmt.Sprintf("cycle %d without a fault: %v", i, err))
			s.drive(i, cfg, &logs)
		}
		return
	}
	// After each fault berthd is restarted, and the pod driven to its removal.
	if err := s.restart(); err != nil {
		s.unexpected = append(s.unexpected, fmt.Sprintf("cycle %d: restart berthd: %v", i, err))
		return
	}
	s.drive(i, cfg, &logs)
}

func containerRequest(podID string, cfg *runtimeapi.PodSandboxConfig, name string) *runtimeapi.CreateContainerRequest {
	return &runtimeapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: cfg, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.01; done"},
		LogPath:  name + ".log",
	}}
}

// call runs rpc, injecting f when it is f's call: after f.delay, or right after the call when it
// returns sooner.
func (s *soak) call(f *fault, rpc string, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if f == nil || f.rpc != rpc {
		return fn(ctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	select {
	case <-time.After(f.delay):
	case err := <-errc:
		errc <- err
	}
	s.inject(f.kind)
	err := <-errc
	if err == nil {
		return errors.New("the call ended before the fault") // go on as after a failed call
	}
	return err
}

func (s *soak) inject(kind string) {
	s.faults++
	s.byFault[kind]++
	switch kind {
	case killBerthd:
		s.d.Stop(syscall.SIGKILL)
	case killShim:
		s.killShims()
	case killContainerd:
		if pid := s.d.ContainerdPid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	case killBerthdAndShim:
		s.killShims()
		s.d.Stop(syscall.SIGKILL)
	}
}

// killShims kills the shims of this berthd's containerd: the pod's, one pod running at a time.
func (s *soak) killShims() {
	for _, pid := range daemon.Processes(func(cmd string) bool {
		return strings.Contains(cmd, "containerd-shim") && strings.Contains(cmd, s.d.State)
	}) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// restart starts berthd again: stopped (SIGTERM) if a fault left it running.
func (s *soak) restart() error {
	select {
	case <-s.d.Exited():
	default:
		if err := s.d.Stop(syscall.SIGTERM); err != nil {
			return err
		}
	}
	return s.d.Run()
}

// drive takes the pod of cycle i to its removal as the kubelet would, after a fault: a pod that
// still says READY must run a new container, or turn NOTREADY (else it is stuck); then it is
// stopped and removed, tried again until it is gone.
func (s *soak) drive(i int, cfg *runtimeapi.PodSandboxConfig, logs *[]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	deadline := time.Now().Add(2 * time.Minute)
	var last error // the last failure, named if the pod cannot be removed
	for {
		pods, err := s.d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			last = fmt.Errorf("list pods: %w", err)
		} else {
			var mine []*runtimeapi.PodSandbox
			for _, p := range pods.Items {
				if p.Metadata.GetUid() == cfg.Metadata.Uid {
					mine = append(mine, p)
				}
			}
			if len(mine) == 0 {
				return
			}
			done := true
			for _, p := range mine {
				if p.State == runtimeapi.PodSandboxState_SANDBOX_READY {
					s.probe(ctx, i, p.Id, cfg, logs)
				}
				if _, err := s.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					last, done = fmt.Errorf("stop pod %s: %w", p.Id, err), false
					continue
				}
				if _, err := s.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					last, done = fmt.Errorf("remove pod %s: %w", p.Id, err), false
				}
			}
			if done {
				continue // list again: gone
			}
		}
		if time.Now().After(deadline) {
			s.unexpected = append(s.unexpected, fmt.Sprintf("cycle %d: the pod could not be removed within 2 minutes: %v", i, last))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// probe starts a container in a pod that says READY, as the kubelet would go on doing. When it
// cannot, the pod must turn NOTREADY within a few seconds (berth checks its pods each second),
// so that the kubelet makes a new one.
func (s *soak) probe(ctx context.Context, i int, podID string, cfg *runtimeapi.PodSandboxConfig, logs *[]string) {
	name := fmt.Sprintf("probe-%d", len(*logs))
	*logs = append(*logs, filepath.Join(cfg.LogDirectory, name+".log"))
	var err error
	for try := 0; try < 3; try++ { // a restarted containerd may take a moment
		var resp *runtimeapi.CreateContainerResponse
		if resp, err = s.d.Runtime.CreateContainer(ctx, containerRequest(podID, cfg, name)); err == nil {
			if _, err = s.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err == nil {
				time.Sleep(50 * time.Millisecond)
				return
			}
			s.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: resp.ContainerId})
		}
		time.Sleep(300 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, serr := s.d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
		if serr != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stuck++
	fmt.Printf("soak: cycle %d: pod %s cannot run a container (%v) and still says READY\n", i, podID, err)
}

// checkLog checks that a container's CRI log holds line1, line2, ... in order, none missing or
// repeated (partial lines joined). A missing file is a container that never started.
func (s *soak) checkLog(pod, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	s.logsChecked++
	want, partial := 1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "<time> <stream> <P|F> <text>"
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) < 3 {
			s.gap(pod, path, fmt.Sprintf("malformed line %q", sc.Text()))
			return
		}
		text := ""
		if len(parts) == 4 {
			text = parts[3]
		}
		if parts[2] == "P" {
			partial += text
			continue
		}
		text, partial = partial+text, ""
		if text != fmt.Sprintf("line%d", want) {
			s.gap(pod, path, fmt.Sprintf("want line%d, got %q", want, text))
			return
		}
		want++
	}
}

func (s *soak) gap(pod, path, what string) {
	s.gaps++
	fmt.Printf("soak: log gap in %s (%s): %s\n", path, pod, what)
}

// host is where this soak's pods leave traces.
func (s *soak) host() traces.Host {
	return traces.Host{Client: s.client, Daemon: s.d, Network: soakNetwork, CgroupParents: []string{cgroupParent}}
}
