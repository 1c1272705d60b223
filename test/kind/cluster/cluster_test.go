// Package cluster checks a kind cluster of berth nodes (make kind-up) as its users would use it:
// through kubectl and kind, from the host. It needs the cluster: BERTH_KIND=1 and
// KIND_KUBECONFIG (make kind-up sets both).
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

const (
	ns        = "berth-kind-test"
	busybox   = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	webImage  = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	waitLimit = 3 * time.Minute
)

var (
	kubeconfig string
	cluster    string
)

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_KIND") == "" {
		fmt.Println("cluster: skipped: run by make kind-up, against its cluster")
		os.Exit(0)
	}
	kubeconfig, cluster = os.Getenv("KIND_KUBECONFIG"), daemon.EnvOr("KIND_CLUSTER", "berth")
	os.Exit(m.Run())
}

// kubectl runs kubectl against the cluster and returns its standard output.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlErr(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func kubectlErr(args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func apply(t *testing.T, manifest string) {
	t.Helper()
	cmd := exec.Command("kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifest)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitLimit)
		}
		time.Sleep(2 * time.Second)
	}
}

// node runs a command in a node container, through the provider kind uses.
func node(t *testing.T, name string, args ...string) string {
	t.Helper()
	provider := "docker"
	if os.Getenv("KIND_EXPERIMENTAL_PROVIDER") == "podman" {
		provider = "podman"
	}
	out, err := exec.Command(provider, append([]string{"exec", name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s exec %s %v: %v\n%s", provider, name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// loadImages puts the test's images on every node with `kind load image-archive`, as a user of
// kind would, once.
func loadImages(t *testing.T) {
	t.Helper()
	loadOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-kind-images-")
		if err != nil {
			loadErr = err
			return
		}
		defer os.RemoveAll(dir)
		busyboxBin, err := images.BusyboxPath()
		if err != nil {
			loadErr = err
			return
		}
		testbin, err := images.BuildTestBin("../../..", dir)
		if err != nil {
			loadErr = err
			return
		}
		catalog, err := images.Catalog(images.Sources{Busybox: busyboxBin, TestBin: testbin})
		if err != nil {
			loadErr = err
			return
		}
		refs := map[name.Tag]v1.Image{}
		for _, ref := range []string{busybox, webImage} {
			tag, err := name.NewTag(ref)
			if err != nil {
				loadErr = err
				return
			}
			refs[tag] = catalog[ref]
		}
		archive := filepath.Join(dir, "images.tar")
		if loadErr = tarball.MultiWriteToFile(archive, refs); loadErr != nil {
			return
		}
		out, err := exec.Command("kind", "load", "image-archive", "--name", cluster, archive).CombinedOutput()
		if err != nil {
			loadErr = fmt.Errorf("kind load image-archive: %v\n%s", err, out)
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
}

var (
	loadOnce sync.Once
	loadErr  error
)

// namespace makes the test's namespace, removed when the test ends.
func namespace(t *testing.T) {
	t.Helper()
	kubectlErr("delete", "namespace", ns, "--wait=true", "--timeout=2m")
	kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { kubectlErr("delete", "namespace", ns, "--wait=false") })
}

// TestNodesRunBerth: every node is Ready and says berth (or the CRI the cluster was made with,
// CRI=containerd) is its runtime.
func TestNodesRunBerth(t *testing.T) {
	runtime := daemon.EnvOr("CRI", "berth") + "://"
	out := kubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.nodeInfo.containerRuntimeVersion} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	lines := strings.Split(out, "\n")
	if len(lines) != 3 {
		t.Fatalf("nodes:\n%s\nwant 3", out)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || !strings.HasPrefix(f[1], runtime) || strings.HasSuffix(f[1], "://Unknown") || f[2] != "True" {
			t.Errorf("node %q: want a Ready node on %s<version>", l, runtime)
		}
	}
}

const webManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: ` + ns + `
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: web}
            topologyKey: kubernetes.io/hostname
      tolerations: []
      containers:
      - name: web
        image: ` + webImage + `
        imagePullPolicy: Never
        ports: [{containerPort: 80}]
        readinessProbe:
          httpGet: {path: /, port: 80}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: ` + ns + `
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
`

// shellPod is a busybox pod on nodeName running script; clientPod's script logs a numbered line
// a second.
func shellPod(name, nodeName, script string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  nodeName: ` + nodeName + `
  containers:
  - name: c
    image: ` + busybox + `
    imagePullPolicy: Never
    command: ["sh", "-c", "` + script + `"]
`
}

func clientPod(name, nodeName string) string {
	return shellPod(name, nodeName, "i=0; while true; do i=$((i+1)); echo line $i; sleep 1; done")
}

// TestWorkloads: a Deployment spread over both workers behind a NodePort Service, reached
// through its ClusterIP, its DNS name and its node port across nodes; logs, exec, port-forward
// and cp through the kubelet's streaming; a deleted pod replaced; berth restarted on a node
// under load without a pod restarting.
func TestWorkloads(t *testing.T) {
	loadImages(t)
	namespace(t)
	apply(t, webManifest)
	apply(t, clientPod("client", cluster+"-worker"))
	waitFor(t, "the web Deployment ready", func() bool {
		out, _ := kubectlErr("-n", ns, "get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}")
		return out == "2"
	})
	waitFor(t, "the client pod running", func() bool {
		out, _ := kubectlErr("-n", ns, "get", "pod", "client", "-o", "jsonpath={.status.phase}")
		return out == "Running"
	})
	nodes := kubectl(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.nodeName}")
	if f := strings.Fields(nodes); len(f) != 2 || f[0] == f[1] {
		t.Errorf("web pods on %q, want one on each worker", nodes)
	}

	fetch := func(url string) string {
		// (Debian's static busybox wget crashes with -T; timeout bounds it instead.)
		out, err := kubectlErr("-n", ns, "exec", "client", "--", "timeout", "10", "wget", "-q", "-O", "-", url)
		if err != nil {
			return "error: " + err.Error()
		}
		return out
	}
	clusterIP := kubectl(t, "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	for _, url := range []string{"http://" + clusterIP, "http://web." + ns + ".svc.cluster.local"} {
		// Several fetches, so that both endpoints (one on the client's node, one across) answer.
		for i := 0; i < 6; i++ {
			if out := fetch(url); !strings.Contains(out, "Welcome to nginx!") {
				t.Errorf("GET %s from the client pod (try %d): %q", url, i, out)
				break
			}
		}
	}
	nodePort := kubectl(t, "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.ports[0].nodePort}")
	for _, n := range []string{cluster + "-control-plane", cluster + "-worker2"} {
		ip := kubectl(t, "get", "node", n, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ip + ":" + nodePort)
		if err != nil {
			t.Errorf("NodePort from the host through %s: %v", n, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("NodePort through %s: %s", n, resp.Status)
		}
	}

	// The kubelet's streaming, berth's streaming server behind it.
	if out := kubectl(t, "-n", ns, "logs", "client", "--tail=1"); !strings.HasPrefix(out, "line ") {
		t.Errorf("kubectl logs: %q", out)
	}
	if out := kubectl(t, "-n", ns, "exec", "client", "--", "sh", "-c", "echo $((6*7))"); out != "42" {
		t.Errorf("kubectl exec: %q", out)
	}
	local := filepath.Join(t.TempDir(), "hosts")
	kubectl(t, "-n", ns, "cp", "client:/etc/hosts", local)
	if b, err := os.ReadFile(local); err != nil || !bytes.Contains(b, []byte("client")) {
		t.Errorf("kubectl cp of /etc/hosts: %q, %v", b, err)
	}
	web := strings.Fields(kubectl(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))[0]
	ctx, cancel := context.WithCancel(context.Background())
	pf := exec.CommandContext(ctx, "kubectl", "--kubeconfig", kubeconfig, "-n", ns, "port-forward", "pod/"+web, "18080:80")
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	var got string
	for i := 0; i < 30 && !strings.Contains(got, "Welcome"); i++ {
		time.Sleep(time.Second)
		if resp, err := http.Get("http://127.0.0.1:18080/"); err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			got = b.String()
		}
	}
	cancel()
	pf.Wait()
	if !strings.Contains(got, "Welcome to nginx!") {
		t.Errorf("kubectl port-forward: %q", got)
	}

	// A pod deleted is replaced, on a node.
	kubectl(t, "-n", ns, "delete", "pod", web, "--wait=true")
	waitFor(t, "the deleted web pod replaced", func() bool {
		out, _ := kubectlErr("-n", ns, "get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}")
		names, _ := kubectlErr("-n", ns, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")
		return out == "2" && !strings.Contains(names, web)
	})

	// berth (or the cluster's CRI) restarted on a worker while its pods serve and a pod there fetches the Service
	// twice a second: no container restarts, no fetch fails, the pod's log (copied by berth)
	// goes on, and the kubelet's streaming comes back once it has reconnected.
	apply(t, loaderPod(cluster+"-worker", clusterIP))
	waitFor(t, "the loader pod fetching", func() bool {
		out, _ := kubectlErr("-n", ns, "logs", "loader")
		return strings.Count(out, "ok") >= 4
	})
	restarts := func() string {
		return kubectl(t, "-n", ns, "get", "pods", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} {end}`)
	}
	before := restarts()
	logsBefore := strings.Count(kubectl(t, "-n", ns, "logs", "loader"), "\n")
	node(t, cluster+"-worker", "systemctl", "restart", daemon.EnvOr("CRI", "berth")) // the CRI's unit
	waitFor(t, "kubectl exec on the restarted node", func() bool {
		out, _ := kubectlErr("-n", ns, "exec", "client", "--", "echo", "still")
		return out == "still"
	})
	time.Sleep(10 * time.Second) // more fetches; a PLEG relist or two
	if after := restarts(); after != before {
		t.Errorf("restart counts changed with berth's restart: %s, then %s", before, after)
	}
	logs := kubectl(t, "-n", ns, "logs", "loader")
	if strings.Contains(logs, "fail") {
		t.Errorf("the loader's fetches of the Service failed around berth's restart:\n%s", logs)
	}
	if n := strings.Count(logs, "\n"); n < logsBefore+10 {
		t.Errorf("the loader's log grew from %d to %d lines across berth's restart and 10 s more", logsBefore, n)
	}
}

// loaderPod fetches url twice a second and logs each outcome.
func loaderPod(nodeName, ip string) string {
	return shellPod("loader", nodeName, "while true; do if timeout 5 wget -q -O /dev/null http://"+ip+"/; then echo ok; else echo fail; fi; sleep 0.5; done")
}

// TestCoreDNSAnswers: the cluster's DNS resolves the API server's Service from a pod.
func TestCoreDNSAnswers(t *testing.T) {
	loadImages(t)
	namespace(t)
	apply(t, clientPod("dns", cluster+"-worker2"))
	waitFor(t, "the dns pod running", func() bool {
		out, _ := kubectlErr("-n", ns, "get", "pod", "dns", "-o", "jsonpath={.status.phase}")
		return out == "Running"
	})
	svc := kubectl(t, "get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}")
	out, err := kubectlErr("-n", ns, "exec", "dns", "--", "nslookup", "kubernetes.default.svc.cluster.local")
	if err != nil || !strings.Contains(out, svc) {
		t.Errorf("nslookup kubernetes.default.svc.cluster.local: %q, %v; want %s", out, err, svc)
	}
}

// TestDefaultStorage: a claim of the default StorageClass ("standard", local-path-provisioner,
// as on kind's own nodes) is provisioned for the pod that uses it, which writes into it; the
// volume goes when the claim does.
func TestDefaultStorage(t *testing.T) {
	loadImages(t)
	namespace(t)
	if out := kubectl(t, "get", "storageclass", "-o", `jsonpath={range .items[*]}{.metadata.name} {.provisioner} {.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}{"\n"}{end}`); !strings.Contains(out, "standard rancher.io/local-path true") {
		t.Fatalf("storage classes:\n%s\nwant standard, rancher.io/local-path, the default", out)
	}
	apply(t, `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: `+ns+`
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: writer
  namespace: `+ns+`
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: `+busybox+`
    imagePullPolicy: Never
    command: ["sh", "-c", "echo kept > /data/file && cat /data/file"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
`)
	var phase string
	deadline := time.Now().Add(3 * time.Minute)
	for ; time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		phase, _ = kubectlErr("-n", ns, "get", "pod", "writer", "-o", "jsonpath={.status.phase}")
		if phase == "Succeeded" || phase == "Failed" {
			break
		}
	}
	if phase != "Succeeded" {
		events, _ := kubectlErr("-n", ns, "get", "events", "--sort-by=.lastTimestamp")
		t.Fatalf("the pod writing into the claim: %q, want Succeeded\n%s", phase, events)
	}
	if out := kubectl(t, "-n", ns, "logs", "writer"); strings.TrimSpace(out) != "kept" {
		t.Errorf("the pod read %q back from its volume", out)
	}
	pv := kubectl(t, "-n", ns, "get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}")
	kubectl(t, "-n", ns, "delete", "pod", "writer", "--wait=true")
	kubectl(t, "-n", ns, "delete", "pvc", "data", "--wait=true")
	waitFor(t, "the volume "+pv+" to go with its claim", func() bool {
		_, err := kubectlErr("get", "pv", pv)
		return err != nil
	})
}
