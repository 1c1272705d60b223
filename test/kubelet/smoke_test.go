package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// TestKubeletSmoke runs the pod shapes a kubelet makes on a berth node, through a real kubelet:
// probes and a liveness restart, an init container, a crash loop, resource limits with the
// kubelet's hugepage limits, a shared PID namespace, host network, an image volume, logs and exec
// through the kubelet's API, berthd killed and restarted under the kubelet, and graceful
// termination with a preStop hook.
func TestKubeletSmoke(t *testing.T) {
	n := startNode(t)
	shared := t.TempDir()
	for name, m := range daemon.KubeletSmokePods {
		if err := n.k.AddPod(name, fmt.Sprintf(m, busybox, shared)); err != nil {
			t.Fatal(err)
		}
	}
	// The first pull and every pod's start: allow for a loaded CI machine.
	for _, c := range [][2]string{{"probes", "web"}, {"init", "main"}, {"graceful", "app"}, {"limits", "app"},
		{"sharedpid", "a"}, {"sharedpid", "b"}, {"hostnet", "app"}, {"ticker", "app"}, {"imagevolume", "app"}} {
		n.running(t, c[0], c[1], 2*time.Minute)
	}

	t.Run("resources and hugepage limits", func(t *testing.T) {
		c := n.running(t, "limits", "app", time.Second)
		want := map[string]string{"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.shares": "256",
			"memory/memory.limit_in_bytes": strconv.Itoa(64 << 20)}
		for file, v := range want {
			paths, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", filepath.Dir(file), "kubepods/*/*", c.Id, filepath.Base(file)))
			if len(paths) != 1 {
				t.Errorf("%s of container %s under kubepods: found %v", file, c.Id, paths)
				continue
			}
			b, err := os.ReadFile(paths[0])
			if got := strings.TrimSpace(string(b)); err != nil || got != v {
				t.Errorf("%s = %q (%v), want %s", paths[0], got, err, v)
			}
		}
		if hp, _ := filepath.Glob("/sys/kernel/mm/hugepages/hugepages-*"); len(hp) == 0 {
			t.Log("this node has no hugepage sizes: the kubelet sent no hugepage limits")
		}
	})

	t.Run("shared PID namespace", func(t *testing.T) {
		b := n.running(t, "sharedpid", "b", time.Second)
		ps := n.execSync(t, b.Id, "ps", "-o", "pid,args")
		if !strings.Contains(ps, "sleep 3600") {
			t.Errorf("container b does not see container a's process:\n%s", ps)
		}
	})

	t.Run("host network", func(t *testing.T) {
		c := n.running(t, "hostnet", "app", time.Second)
		host, _ := os.Readlink("/proc/self/ns/net")
		if got := strings.TrimSpace(n.execSync(t, c.Id, "readlink", "/proc/self/ns/net")); got != host {
			t.Errorf("container's network namespace = %s, the node's = %s", got, host)
		}
	})

	t.Run("image volume", func(t *testing.T) {
		c := n.running(t, "imagevolume", "app", time.Second)
		out := n.execSync(t, c.Id, "sh", "-c", "test -x /img/bin/sh && test -x /imgbin/sh && ! touch /img/written 2>/dev/null && echo ok")
		if strings.TrimSpace(out) != "ok" {
			t.Errorf("the image volume at /img (and its bin at /imgbin) is not the image's, read-only: %q", out)
		}
		var images int
		for _, m := range n.status(t, c.Id).GetMounts() {
			if m.GetImage().GetImageRef() != "" {
				images++
			}
		}
		if images != 2 {
			t.Errorf("ContainerStatus reports %d image mounts with their image_ref, want 2", images)
		}
	})

	t.Run("init container and emptyDir, logs through the kubelet", func(t *testing.T) {
		inits := n.containers(t, "init", "prepare")
		if len(inits) != 1 || inits[0].State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Fatalf("init container: %v", inits)
		}
		if st := n.status(t, inits[0].Id); st.ExitCode != 0 || st.Reason != "Completed" {
			t.Errorf("init container exit %d, reason %q", st.ExitCode, st.Reason)
		}
		waitFor(t, 10*time.Second, "main container's log", func() (bool, string) {
			out := n.kubeletLogs(t, "init", "main")
			return strings.Contains(out, "prepared-by-init"), out
		})
	})

	t.Run("exec through the kubelet", func(t *testing.T) {
		out, errOut, err := n.kubeletExec(t, "init", "main", "sh", "-c", "echo out; echo err >&2; cat /data/msg")
		if err != nil || out != "out\nprepared-by-init\n" || errOut != "err\n" {
			t.Errorf("kubelet exec: stdout %q stderr %q err %v", out, errOut, err)
		}
		_, _, err = n.kubeletExec(t, "init", "main", "sh", "-c", "exit 7")
		if err == nil || !strings.Contains(err.Error(), "7") {
			t.Errorf("kubelet exec of `exit 7`: %v, want exit code 7", err)
		}
	})

	t.Run("probes and a liveness restart", func(t *testing.T) {
		waitFor(t, 20*time.Second, "successful exec readiness and HTTP liveness probes", func() (bool, string) {
			r := n.metric(t, "/metrics/probes", "prober_probe_total", `probe_type="Readiness"`, `result="successful"`, `pod="`+n.podName("probes")+`"`)
			l := n.metric(t, "/metrics/probes", "prober_probe_total", `probe_type="Liveness"`, `result="successful"`, `pod="`+n.podName("probes")+`"`)
			return r > 0 && l > 0, fmt.Sprintf("readiness %v, liveness %v", r, l)
		})
		first := n.running(t, "probes", "web", time.Second)
		if _, errOut, err := n.kubeletExec(t, "probes", "web", "rm", "/www/healthz"); err != nil {
			t.Fatalf("rm healthz: %v %s", err, errOut)
		}
		waitFor(t, 60*time.Second, "the web container restarted by its liveness probe", func() (bool, string) {
			cs := n.containers(t, "probes", "web")
			return len(cs) > 0 && cs[0].Metadata.Attempt >= 1 && cs[0].State == runtimeapi.ContainerState_CONTAINER_RUNNING, fmt.Sprint(cs)
		})
		if st := n.status(t, first.Id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("the first web container is %v after its restart", st.State)
		}
	})

	t.Run("crash loop", func(t *testing.T) {
		waitFor(t, 90*time.Second, "the crashing container restarted", func() (bool, string) {
			cs := n.containers(t, "crash", "app")
			return len(cs) >= 2 && cs[0].Metadata.Attempt >= 1, fmt.Sprint(cs)
		})
		for _, c := range n.containers(t, "crash", "app") {
			st := n.status(t, c.Id)
			if st.State == runtimeapi.ContainerState_CONTAINER_EXITED && (st.ExitCode != 3 || st.Reason != "Error") {
				t.Errorf("attempt %d: exit %d reason %q, want 3 Error", c.Metadata.Attempt, st.ExitCode, st.Reason)
			}
			if got := st.Annotations["io.kubernetes.container.restartCount"]; got != strconv.Itoa(int(c.Metadata.Attempt)) {
				t.Errorf("attempt %d: restartCount annotation %q", c.Metadata.Attempt, got)
			}
		}
		if out := n.kubeletLogs(t, "crash", "app"); !strings.Contains(out, "crashing") {
			t.Errorf("crash loop log through the kubelet = %q", out)
		}
	})

	t.Run("berthd killed and restarted under the kubelet", func(t *testing.T) {
		stable := map[string]*runtimeapi.Container{}
		for _, p := range []string{"init", "limits", "sharedpid", "hostnet", "ticker", "graceful", "probes", "imagevolume"} {
			for _, c := range n.containers(t, p, "") {
				if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
					stable[p+"/"+c.Metadata.Name] = c
				}
			}
		}
		if err := n.d.Stop(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // the kubelet's relist fails meanwhile; the containers go on
		if err := n.d.Run(); err != nil {
			t.Fatalf("restart berthd: %v", err)
		}
		time.Sleep(10 * time.Second) // several relists and probe rounds of the kubelet
		for key, before := range stable {
			pod, name, _ := strings.Cut(key, "/")
			cs := n.containers(t, pod, name)
			if len(cs) == 0 || cs[0].Id != before.Id || cs[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("%s: before the restart %s (attempt %d) running; after: %v", key, before.Id, before.Metadata.Attempt, cs)
			}
		}
		// Every tick line is there once, in order, from before and after the restart.
		lines := strings.Split(strings.TrimSpace(n.kubeletLogs(t, "ticker", "app")), "\n")
		for i, l := range lines {
			if l != fmt.Sprintf("tick %d", i) {
				t.Fatalf("ticker log line %d is %q, want \"tick %d\" (a line lost or repeated)", i, l, i)
			}
		}
		if len(lines) < 150 {
			t.Errorf("ticker logged %d lines in over 15 s at ten a second", len(lines))
		}
	})

	t.Run("graceful termination with a preStop hook", func(t *testing.T) {
		c := n.running(t, "graceful", "app", time.Second)
		start := time.Now()
		if err := n.k.RemovePod("graceful"); err != nil {
			t.Fatal(err)
		}
		events := filepath.Join(shared, "events")
		waitFor(t, 25*time.Second, "preStop hook, then SIGTERM", func() (bool, string) {
			b, _ := os.ReadFile(events)
			return string(b) == "started\nprestop\nterm\n", string(b)
		})
		waitFor(t, 25*time.Second, "the container stopped", func() (bool, string) {
			resp, err := n.d.Runtime.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
			if err != nil { // already removed by the kubelet
				return true, ""
			}
			st := resp.Status
			if st.State == runtimeapi.ContainerState_CONTAINER_EXITED && st.ExitCode != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0 (the trap's)", st.ExitCode)
			}
			return st.State == runtimeapi.ContainerState_CONTAINER_EXITED, st.State.String()
		})
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("stopping took %s: the container was not stopped by its SIGTERM", d)
		}
	})
}

// TestKubeletWithEventedPLEG runs a kubelet that learns of container changes from berth's event
// stream (GetContainerEvents, the EventedPLEG gate) and takes pod and container stats from the
// CRI (ListPodSandboxStats, ListContainerStats, ImageFsInfo; the PodAndContainerStatsFromCRI
// gate): a crash loop is seen and restarted, a running container's stats reach the kubelet's
// metrics, and a container exec'd and stopped through the kubelet is seen as stopped.
func TestKubeletWithEventedPLEG(t *testing.T) {
	n := startNode(t, "--feature-gates", "EventedPLEG=true,PodAndContainerStatsFromCRI=true")
	for _, name := range []string{"crash", "ticker"} {
		if err := n.k.AddPod(name, fmt.Sprintf(daemon.KubeletSmokePods[name], busybox, "")); err != nil {
			t.Fatal(err)
		}
	}
	n.running(t, "ticker", "app", 2*time.Minute)
	waitFor(t, 90*time.Second, "the crashing container restarted on berth's events", func() (bool, string) {
		cs := n.containers(t, "crash", "app")
		return len(cs) >= 2 && cs[0].Metadata.Attempt >= 1, fmt.Sprint(cs)
	})
	if got := n.metric(t, "/metrics", "kubelet_evented_pleg_connection_success_count"); got < 1 {
		t.Errorf("the kubelet never connected to berth's event stream (kubelet_evented_pleg_connection_success_count = %v)", got)
	}
	if got := n.metric(t, "/metrics", "kubelet_evented_pleg_connection_error_count"); got > 0 {
		t.Errorf("the kubelet's event stream from berth failed %v times", got)
	}
	waitFor(t, 60*time.Second, "the ticker's CPU and memory in the kubelet's resource metrics (CRI stats)", func() (bool, string) {
		mem := n.metric(t, "/metrics/resource", "container_memory_working_set_bytes", `container="app"`, `pod="`+n.podName("ticker")+`"`)
		cpu := n.metric(t, "/metrics/resource", "container_cpu_usage_seconds_total", `container="app"`, `pod="`+n.podName("ticker")+`"`)
		return mem > 0 && cpu > 0, fmt.Sprintf("memory %v, cpu %v", mem, cpu)
	})
	// With PodAndContainerStatsFromCRI the kubelet's /metrics/cadvisor is berth's
	// ListPodSandboxMetrics.
	waitFor(t, 60*time.Second, "the ticker's processes, threads, files and network in the kubelet's cAdvisor metrics", func() (bool, string) {
		var got []string
		ok := true
		for _, name := range []string{"container_processes", "container_threads", "container_file_descriptors", "container_spec_cpu_shares", "container_start_time_seconds"} {
			v := n.metric(t, "/metrics/cadvisor", name, `container="app"`, `pod="`+n.podName("ticker")+`"`)
			ok = ok && v > 0
			got = append(got, fmt.Sprintf("%s %v", name, v))
		}
		if v := n.metric(t, "/metrics/cadvisor", "container_network_transmit_packets_total", `pod="`+n.podName("ticker")+`"`); v == 0 {
			// A pod that sent nothing has sent nothing: the series must be there all the same.
			text, _ := n.k.Get(ctx(t), "/metrics/cadvisor")
			ok = ok && strings.Contains(text, "container_network_transmit_packets_total{")
		}
		return ok, strings.Join(got, ", ")
	})
}
