package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/engine"
	"github.com/berth-runtime/berth/test/daemon"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// condition returns the named condition of a Status answer.
func condition(t *testing.T, resp *runtimeapi.StatusResponse, typ string) *runtimeapi.RuntimeCondition {
	t.Helper()
	for _, c := range resp.GetStatus().GetConditions() {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("Status has no %s condition: %v", typ, resp)
	return nil
}

// waitCondition polls Status until the condition has the wanted value.
func waitCondition(t *testing.T, rs runtimeapi.RuntimeServiceClient, typ string, want bool, timeout time.Duration) *runtimeapi.RuntimeCondition {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := rs.Status(ctx(t), &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		c := condition(t, resp, typ)
		if c.Status == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed %v for %s: %s: %s", typ, c.Status, timeout, c.Reason, c.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func TestVersionStatusRuntimeConfig(t *testing.T) {
	d := startDaemon(t)

	v, err := d.Runtime.Version(ctx(t), &runtimeapi.VersionRequest{})
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Errorf("Version = %+v, want runtime berth, API v1 and a version", v)
	}

	resp, err := d.Runtime.Status(ctx(t), &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if c := condition(t, resp, runtimeapi.RuntimeReady); !c.Status {
		t.Errorf("RuntimeReady = false: %s: %s", c.Reason, c.Message)
	}
	// The default handler is there by name and as "", with the features this kernel gives.
	handlers := map[string]*runtimeapi.RuntimeHandlerFeatures{}
	for _, h := range resp.RuntimeHandlers {
		handlers[h.Name] = h.Features
	}
	for _, name := range []string{"", "runc"} {
		if f, ok := handlers[name]; !ok || !f.GetRecursiveReadOnlyMounts() || !f.GetUserNamespaces() {
			t.Errorf("runtime handler %q: %v (listed %v), want recursive read-only mounts and user namespaces (kernel 6.18: idmapped overlayfs layers)", name, f, ok)
		}
	}
	if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Error("Status features: no SupplementalGroupsPolicy")
	}
	var versions map[string]string
	if err := json.Unmarshal([]byte(resp.Info["versions"]), &versions); err != nil {
		t.Fatalf("verbose Status info[versions] = %q: %v", resp.Info["versions"], err)
	}
	if !strings.HasPrefix(versions["containerd"], "v2.") {
		t.Errorf("verbose Status versions = %v, want containerd v2.x", versions)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(resp.Info["config"]), &cfg); err != nil {
		t.Fatalf("verbose Status info[config] = %q: %v", resp.Info["config"], err)
	}
	if cfg["root"] != d.Root {
		t.Errorf("verbose Status config root = %v, want %s", cfg["Root"], d.Root)
	}

	rc, err := d.Runtime.RuntimeConfig(ctx(t), &runtimeapi.RuntimeConfigRequest{})
	if err != nil {
		t.Fatalf("RuntimeConfig: %v", err)
	}
	if got := rc.GetLinux().GetCgroupDriver(); got != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig cgroup driver = %v, want CGROUPFS on this systemd-less machine", got)
	}

	// The socket is root's alone.
	fi, err := os.Stat(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode = %v, want a 0600 socket", fi.Mode())
	}
}

func TestSIGTERMLeavesContainerdAndRestartAdoptsIt(t *testing.T) {
	d := startDaemon(t)
	pid := d.ContainerdPid()
	if !processAlive(pid) {
		t.Fatalf("managed containerd pid %d is not running", pid)
	}
	if err := d.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if d.Logs() == "" || !strings.Contains(d.Logs(), "stopping berthd") {
		t.Errorf("berthd did not log a clean stop:\n%s", d.Logs())
	}
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Errorf("socket still there after a clean stop: %v", err)
	}
	if !processAlive(pid) {
		t.Fatalf("managed containerd (pid %d) died with berthd", pid)
	}

	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	if got := d.ContainerdPid(); got != pid {
		t.Errorf("restarted berthd runs containerd pid %d, want the adopted pid %d", got, pid)
	}
	if !strings.Contains(d.Logs(), "adopted running containerd") {
		t.Errorf("restarted berthd did not adopt containerd:\n%s", d.Logs())
	}
	waitCondition(t, d.Runtime, runtimeapi.RuntimeReady, true, 10*time.Second)
}

func TestStaleSocketIsReplaced(t *testing.T) {
	d := startDaemon(t)
	// A berthd killed with SIGKILL leaves its socket behind; the next one must serve anyway.
	if err := d.Stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Socket); err != nil {
		t.Fatalf("expected a stale socket after SIGKILL: %v", err)
	}
	if err := d.Run(); err != nil {
		t.Fatalf("berthd over a stale socket: %v", err)
	}
}

func TestSecondDaemonOnALiveSocketRefuses(t *testing.T) {
	d := startDaemon(t)
	bin := filepath.Join(os.Getenv("BERTH_BIN"), "berthd")
	pid := d.ContainerdPid()
	// Same directories, same socket: it must stop before it adopts (or starts) a containerd.
	out, err := exec.Command(bin, "--config", filepath.Join(d.Dir, "config.toml"), "--root", d.Root, "--state", d.State, "--listen", d.Socket).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another server is answering") {
		t.Errorf("second berthd on a live socket: err=%v, output:\n%s", err, out)
	}
	if strings.Contains(string(out), "adopted running containerd") || strings.Contains(string(out), "started containerd") {
		t.Errorf("second berthd touched containerd before giving up:\n%s", out)
	}
	if got := d.ContainerdPid(); got != pid || !processAlive(pid) {
		t.Errorf("managed containerd changed from pid %d to %d", pid, got)
	}
	if _, err := d.Runtime.Version(ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Errorf("first berthd stopped answering: %v", err)
	}
}

func TestKilledContainerdIsRestarted(t *testing.T) {
	d := startDaemon(t)
	pid := d.ContainerdPid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for d.ContainerdPid() == pid || !processAlive(d.ContainerdPid()) {
		if time.Now().After(deadline) {
			t.Fatalf("containerd (pid %d) was not restarted", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitCondition(t, d.Runtime, runtimeapi.RuntimeReady, true, 20*time.Second)
}

func TestBadContainerdAddress(t *testing.T) {
	d := startDaemon(t, "--containerd-address", "/nonexistent/containerd.sock")
	c := waitCondition(t, d.Runtime, runtimeapi.RuntimeReady, false, 10*time.Second)
	if c.Reason == "" || !strings.Contains(c.Message, "containerd") {
		t.Errorf("RuntimeReady=false without a reason and message: %+v", c)
	}
	if d.ContainerdPid() != 0 {
		t.Errorf("berthd started a managed containerd although --containerd-address was given")
	}
}

func TestNetworkReadyFollowsCNIConfDir(t *testing.T) {
	confDir := t.TempDir()
	d := startDaemon(t, "--cni-conf-dir", confDir)
	c := waitCondition(t, d.Runtime, runtimeapi.NetworkReady, false, 5*time.Second)
	if c.Reason == "" || !strings.Contains(c.Message, confDir) {
		t.Errorf("NetworkReady=false should say why and name %s: %+v", confDir, c)
	}
	conf := `{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"bridge","bridge":"berthtest0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]]}}]}`
	if err := os.WriteFile(filepath.Join(confDir, "10-t.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, d.Runtime, runtimeapi.NetworkReady, true, 5*time.Second)
}

func TestCrictlVersionAndInfo(t *testing.T) {
	d := startDaemon(t)
	crictl := tool(t, "crictl")
	out, err := exec.Command(crictl, "--runtime-endpoint", d.Endpoint(), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "RuntimeName:  berth") {
		t.Errorf("crictl version: %v\n%s", err, out)
	}
	out, err = exec.Command(crictl, "--runtime-endpoint", d.Endpoint(), "info").Output()
	if err != nil {
		t.Fatalf("crictl info: %v\n%s", err, out)
	}
	var info struct {
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status bool   `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
		Versions map[string]string `json:"versions"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("crictl info output is not JSON: %v\n%s", err, out)
	}
	if len(info.Status.Conditions) != 2 || info.Versions["containerd"] == "" {
		t.Errorf("crictl info = %+v, want two conditions and versions", info)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	addr := freeAddress(t)
	d := startDaemon(t, "--metrics-address", addr, "--cni-conf-dir", podNetwork(t))
	if _, err := d.Runtime.Status(ctx(t), &runtimeapi.StatusRequest{}); err != nil {
		t.Fatal(err)
	}
	runPod(t, d, podConfig("metrics"))
	families := scrapeMetrics(t, addr)
	for _, name := range []string{"berth_cri_request_duration_seconds", "berth_containerd_restarts_total", "go_goroutines",
		"berth_pods", "berth_containers", "berth_cni_operation_duration_seconds", "berth_image_pulls_total"} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	found := false
	for _, m := range families["berth_cri_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" && l.GetValue() == "Status" {
				found = true
			}
		}
	}
	if !found {
		t.Error("no latency recorded for the Status call")
	}
	for _, m := range families["berth_pods"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "ready" && m.GetGauge().GetValue() != 1 {
			t.Errorf("berth_pods{state=ready} = %v with one pod running", m.GetGauge().GetValue())
		}
	}
	if h := families["berth_cni_operation_duration_seconds"].GetMetric(); len(h) == 0 || h[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("CNI ADD latency: %v", h)
	}
}

// berthd and its managed containerd collect garbage at engine.GCPercent unless the operator sets
// GOGC, which both then follow.
func TestDaemonsGCPercent(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want int
	}{
		{"default", nil, engine.GCPercent},
		{"GOGC set", []string{"GOGC=80"}, 80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddress(t)
			d, err := daemon.NewDirs()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Cleanup)
			d.Env = tc.env
			if err := d.Run("--metrics-address", addr); err != nil {
				t.Fatal(err)
			}
			families := scrapeMetrics(t, addr)
			if g := families["go_gc_gogc_percent"].GetMetric(); len(g) != 1 || g[0].GetGauge().GetValue() != float64(tc.want) {
				t.Errorf("berthd go_gc_gogc_percent = %v, want %d", g, tc.want)
			}
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", d.ContainerdPid()))
			if err != nil {
				t.Fatal(err)
			}
			var gogc []string
			for _, kv := range strings.Split(string(environ), "\x00") {
				if strings.HasPrefix(kv, "GOGC=") {
					gogc = append(gogc, kv)
				}
			}
			if want := fmt.Sprintf("GOGC=%d", tc.want); len(gogc) != 1 || gogc[0] != want {
				t.Errorf("managed containerd's environment has %q, want [%s]", gogc, want)
			}
		})
	}
}

// freeAddress is a loopback host:port nothing listens on.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrapeMetrics reads the Prometheus endpoint at addr.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics are not in the Prometheus text format: %v", err)
	}
	return families
}
