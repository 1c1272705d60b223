package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// The kubelet section: a real kubelet (the node e2e suite's version) with an API server in front
// of each runtime in turn, as a node runs. First kubeletPods API pods one at a time, each timed
// from its creation to its container running as the API server sees it, with the kubelet's own
// pod start SLI; then as many at once (the node's throughput through the kubelet); then a full
// node (nodePods, the kubelet's default maximum) left alone for BENCH_NODE_IDLE (default 5m)
// with the kubelet's relists, stats and probes as the only load.
const (
	kubeletPods = 30
	nodePods    = 110
)

type kubeletResult struct {
	toRunning, sli, burst []time.Duration
	// sliExact is the SLI's end (the kubelet's watchObservedRunningTime) from the moment the
	// bench created the pod, where the SLI counts from the pod's creationTimestamp, which the
	// API server keeps to the second.
	sliExact                      []time.Duration
	idleCPU                       float64 // CPU seconds per second of the runtime's processes
	listContainers, podStats, ctr []time.Duration
	nodeMemPerPod, rssPerPod      float64
	// pssPerPod and shimsPSSPerPod are the runtime's proportional set size per pod (each
	// shared page split among the processes that map it: the shims' executable counts once),
	// all of it and that of the shims and infra processes alone.
	pssPerPod, shimsPSSPerPod float64
}

func (b *bench) kubelet() error {
	idle := 5 * time.Minute
	if s := os.Getenv("BENCH_NODE_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("BENCH_NODE_IDLE: %w", err)
		}
		idle = d
	}
	api, err := daemon.StartAPIServer()
	if err != nil {
		return err
	}
	defer api.Cleanup()
	res := map[string]kubeletResult{}
	for _, t := range b.both() {
		r, err := b.kubeletRun(api, t, idle)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		res[t.name] = r
	}
	br, cr := res["berth"], res["containerd"]
	for _, p := range []int{50, 90} {
		b.add(fmt.Sprintf("kubelet, API pods 1 at a time: created to RUNNING p%d", p), "ms", ms(percentile(br.toRunning, p)), ms(percentile(cr.toRunning, p)))
	}
	for _, p := range []int{50, 90} {
		b.add(fmt.Sprintf("kubelet, API pods 1 at a time: kubelet_pod_start_sli_duration p%d", p), "ms", ms(percentile(br.sli, p)), ms(percentile(cr.sli, p)))
	}
	for _, p := range []int{50, 90} {
		b.add(fmt.Sprintf("kubelet, API pods 1 at a time: the SLI's end from the exact creation time p%d", p), "ms", ms(percentile(br.sliExact, p)), ms(percentile(cr.sliExact, p)))
	}
	for _, p := range []int{50, 90} {
		b.add(fmt.Sprintf("kubelet, %d API pods at once: created to RUNNING p%d", kubeletPods, p), "ms", ms(percentile(br.burst, p)), ms(percentile(cr.burst, p)))
	}
	name := fmt.Sprintf("full node (%d pods, %s idle)", nodePods, idle)
	b.add(name+": runtime CPU (daemons + shims)", "ms/s", br.idleCPU*1000, cr.idleCPU*1000)
	for _, l := range []struct {
		name string
		b, c []time.Duration
	}{{"ListContainers", br.listContainers, cr.listContainers}, {"ListPodSandboxStats", br.podStats, cr.podStats}, {"ContainerStats", br.ctr, cr.ctr}} {
		b.add(fmt.Sprintf("%s: %s p50", name, l.name), "ms", ms(percentile(l.b, 50)), ms(percentile(l.c, 50)))
		b.add(fmt.Sprintf("%s: %s p99", name, l.name), "ms", ms(percentile(l.b, 99)), ms(percentile(l.c, 99)))
	}
	b.add(name+": node memory per pod (MemAvailable)", "MiB", mib(br.nodeMemPerPod), mib(cr.nodeMemPerPod))
	b.add(name+": runtime RSS per pod (daemons, shims, infra)", "MiB", mib(br.rssPerPod), mib(cr.rssPerPod))
	b.add(name+": runtime PSS per pod (daemons, shims, infra)", "MiB", mib(br.pssPerPod), mib(cr.pssPerPod))
	b.add(name+": PSS per pod of the shims and infra processes alone", "MiB", mib(br.shimsPSSPerPod), mib(cr.shimsPSSPerPod))
	return nil
}

// kubeletRun runs one kubelet in front of t and measures both parts.
func (b *bench) kubeletRun(api *daemon.APIServer, t *target, idle time.Duration) (kubeletResult, error) {
	var r kubeletResult
	kubeconfig := filepath.Join(b.tmp, "kubeconfig-"+t.name)
	if err := api.Kubeconfig(kubeconfig); err != nil {
		return r, err
	}
	node := "bench-" + t.name
	k, err := daemon.StartKubelet(daemon.KubeletOptions{Endpoint: t.endpoint, NodeName: node, Args: []string{"--kubeconfig", kubeconfig}})
	if err != nil {
		return r, err
	}
	defer func() {
		k.Cleanup()
		t.removeAll()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), idle+15*time.Minute)
	defer cancel()
	if err := waitNodeReady(ctx, api, node); err != nil {
		return r, err
	}
	defer deletePods(api, t.name)
	goruntime.GC()
	memBefore := memAvailable()

	// One at a time, then a burst, timed on a watch of the API server.
	w, err := watchRunning(ctx, api, t.name)
	if err != nil {
		return r, err
	}
	defer w.stop()
	create := func(name string) (time.Time, error) {
		at := time.Now()
		return at, api.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", benchPod(name, t.name, node), nil)
	}
	createdSeq := map[string]time.Time{}
	for i := range kubeletPods {
		name := fmt.Sprintf("%s-seq-%d", t.name, i)
		created, err := create(name)
		if err != nil {
			return r, err
		}
		createdSeq[name] = created
		running, err := w.wait(ctx, i+1)
		if err != nil {
			return r, err
		}
		r.toRunning = append(r.toRunning, running[name].Sub(created))
	}
	// The kubelet's SLI lands once it has written the running status: wait for all of them.
	var slis []startSLI
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if slis = startSLIs(k.Logs(), t.name+"-seq-"); len(slis) >= kubeletPods || time.Now().After(deadline) {
			break
		}
	}
	if len(slis) < kubeletPods {
		return r, fmt.Errorf("the kubelet logged the start SLI of %d pods, not %d", len(slis), kubeletPods)
	}
	for _, s := range slis {
		r.sli = append(r.sli, s.duration)
		if at, ok := createdSeq[s.pod]; ok && !s.end.IsZero() {
			r.sliExact = append(r.sliExact, s.end.Sub(at))
		}
	}
	created := map[string]time.Time{}
	for i := range kubeletPods {
		name := fmt.Sprintf("%s-burst-%d", t.name, i)
		if created[name], err = create(name); err != nil {
			return r, err
		}
	}
	running, err := w.wait(ctx, 2*kubeletPods)
	if err != nil {
		return r, err
	}
	for name, at := range created {
		r.burst = append(r.burst, running[name].Sub(at))
	}

	// The full node.
	for i := 2 * kubeletPods; i < nodePods; i++ {
		if _, err := create(fmt.Sprintf("%s-node-%d", t.name, i)); err != nil {
			return r, err
		}
	}
	if _, err := w.wait(ctx, nodePods); err != nil {
		return r, err
	}
	time.Sleep(10 * time.Second) // the last pods' first probes and stats
	r.nodeMemPerPod = float64(int64(memBefore)-int64(memAvailable())) / nodePods
	_, total := t.processRSS()
	r.rssPerPod = float64(total) / nodePods
	daemonsPSS, totalPSS := t.processMemory(pss)
	r.pssPerPod, r.shimsPSSPerPod = float64(totalPSS)/nodePods, float64(totalPSS-daemonsPSS)/nodePods
	cpuBefore := t.processCPU()
	began := time.Now()
	for time.Since(began) < idle {
		tick := time.Now()
		if err := r.sampleLists(ctx, t); err != nil {
			return r, err
		}
		time.Sleep(time.Second - time.Since(tick))
	}
	r.idleCPU = (t.processCPU() - cpuBefore).Seconds() / time.Since(began).Seconds()
	return r, nil
}

// sampleLists times one call each of what the kubelet calls most on a full node.
func (r *kubeletResult) sampleLists(ctx context.Context, t *target) error {
	start := time.Now()
	cs, err := t.rs.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return err
	}
	r.listContainers = append(r.listContainers, time.Since(start))
	start = time.Now()
	if _, err := t.rs.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{}); err != nil {
		return err
	}
	r.podStats = append(r.podStats, time.Since(start))
	if len(cs.Containers) == 0 {
		return fmt.Errorf("no containers on a full node")
	}
	id := cs.Containers[len(r.ctr)%len(cs.Containers)].Id
	start = time.Now()
	if _, err := t.rs.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id}); err != nil {
		return err
	}
	r.ctr = append(r.ctr, time.Since(start))
	return nil
}

// benchPod is an API pod on node with one sleeping busybox container and an exec readiness
// probe every 30 s, labelled bench=label. (Every 10 s, the default, on 110 pods is 11 runc execs
// a second: this 2-core node is then saturated by runc alone, whatever the runtime.)
func benchPod(name, label, node string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "labels": map[string]string{"bench": label}},
		"spec": map[string]any{
			"nodeName":                      node,
			"terminationGracePeriodSeconds": 1,
			"tolerations":                   []map[string]string{{"operator": "Exists"}},
			"containers": []map[string]any{{
				"name": "sleep", "image": busyboxImage, "imagePullPolicy": "IfNotPresent",
				"command":        []string{"sleep", "3600"},
				"readinessProbe": map[string]any{"exec": map[string]any{"command": []string{"true"}}, "periodSeconds": 30},
			}},
		},
	}
}

// podEvent is the part of a watch event of pods this bench reads.
type podEvent struct {
	Type   string `json:"type"`
	Object struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Status struct {
			ContainerStatuses []struct {
				State struct {
					Running *struct{} `json:"running"`
				} `json:"state"`
			} `json:"containerStatuses"`
		} `json:"status"`
	} `json:"object"`
}

// podWatch records when each pod labelled bench=label is first seen with a running container.
type podWatch struct {
	mu      sync.Mutex
	running map[string]time.Time
	changed chan struct{}
	cancel  context.CancelFunc
	err     error
}

func watchRunning(ctx context.Context, api *daemon.APIServer, label string) (*podWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := api.Open(ctx, http.MethodGet, "/api/v1/namespaces/default/pods?watch=true&labelSelector="+url.QueryEscape("bench="+label), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	w := &podWatch{running: map[string]time.Time{}, changed: make(chan struct{}, 1), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev podEvent
			err := dec.Decode(&ev)
			now := time.Now()
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else if cs := ev.Object.Status.ContainerStatuses; len(cs) > 0 && cs[0].State.Running != nil {
				if _, seen := w.running[ev.Object.Metadata.Name]; !seen {
					w.running[ev.Object.Metadata.Name] = now
				}
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return w, nil
}

// wait returns once n pods have been seen running.
func (w *podWatch) wait(ctx context.Context, n int) (map[string]time.Time, error) {
	for {
		w.mu.Lock()
		got, err := len(w.running), w.err
		out := make(map[string]time.Time, got)
		for k, v := range w.running {
			out[k] = v
		}
		w.mu.Unlock()
		if got >= n {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("watch of pods: %w (%d of %d running)", err, got, n)
		}
		select {
		case <-w.changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d pods running: %w", got, n, ctx.Err())
		}
	}
}

func (w *podWatch) stop() { w.cancel() }

// sliLine is the kubelet's log line of a pod's start SLI, with the time it ends at.
var sliLine = regexp.MustCompile(`"Observed pod startup duration" pod="default/([^"]+)" podStartSLOduration=([0-9.e+-]+) .*watchObservedRunningTime="([^"]+?) m=`)

// startSLI is a pod's start SLI as the kubelet logs it.
type startSLI struct {
	pod      string
	duration time.Duration
	end      time.Time // zero if the line does not say
}

// startSLIs reads the kubelet's start SLI of the pods named prefix... from its log.
func startSLIs(log, prefix string) []startSLI {
	var out []startSLI
	for _, m := range sliLine.FindAllStringSubmatch(log, -1) {
		if !strings.HasPrefix(m[1], prefix) {
			continue
		}
		s, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		end, _ := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", m[3])
		out = append(out, startSLI{pod: m[1], duration: time.Duration(s * float64(time.Second)), end: end})
	}
	return out
}

func waitNodeReady(ctx context.Context, api *daemon.APIServer, node string) error {
	var n struct {
		Status struct {
			Conditions []struct{ Type, Status string } `json:"conditions"`
		} `json:"status"`
	}
	for {
		if err := api.Do(ctx, http.MethodGet, "/api/v1/nodes/"+node, nil, &n); err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %w", node, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// deletePods deletes the pods labelled bench=label and waits until the kubelet has removed them.
func deletePods(api *daemon.APIServer, label string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sel := "labelSelector=" + url.QueryEscape("bench="+label)
	if err := api.Do(ctx, http.MethodDelete, "/api/v1/namespaces/default/pods?"+sel, map[string]any{"gracePeriodSeconds": 1}, nil); err != nil {
		fmt.Fprintln(os.Stderr, "bench: delete pods:", err)
		return
	}
	for {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := api.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/pods?"+sel, nil, &list); err != nil || len(list.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "bench: %d pods not removed by the kubelet\n", len(list.Items))
			return
		case <-time.After(time.Second):
		}
	}
}
