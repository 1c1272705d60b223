package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-runtime/berth/runtime"
	"github.com/berth-runtime/berth/runtime/namespace"
	"github.com/berth-runtime/berth/test/daemon"
)

const nginxRef = "registry.k8s.io/e2e-test-images/nginx:1.14-2"

type syncBuffer = daemon.SyncBuffer

// stream connects to a streaming URL as kubectl does (SPDY) and runs the exec or attach.
func stream(ctx context.Context, rawURL string, opts remotecommand.StreamOptions) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	e, err := remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
	if err != nil {
		return err
	}
	return e.StreamWithContext(ctx, opts)
}

// exitCode is the exit code a stream error carries, -1 for other errors, 0 for none.
func exitCode(err error) int {
	var ee utilexec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitStatus()
	default:
		return -1
	}
}

func (e *containerEnv) execURL(t *testing.T, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := e.d.Runtime.Exec(ctx(t), req)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	return resp.Url
}

func TestExecStreams(t *testing.T) {
	e := newContainerEnv(t, "exec")
	id := e.run(t, "app", nil)

	// Without a terminal: stdout and stderr apart, the exit code carried back.
	var out, errOut syncBuffer
	err := stream(ctx(t), e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Stdout: true, Stderr: true}),
		remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	if exitCode(err) != 3 || out.String() != "out\n" || errOut.String() != "err\n" {
		t.Errorf("exec: err %v (exit %d), stdout %q, stderr %q; want exit 3, out, err", err, exitCode(err), out.String(), errOut.String())
	}

	// Stdin without a terminal: the command reads it to the end.
	out = syncBuffer{}
	err = stream(ctx(t), e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"wc", "-l"}, Stdin: true, Stdout: true}),
		remotecommand.StreamOptions{Stdin: strings.NewReader("a\nb\nc\n"), Stdout: &out})
	if err != nil || strings.TrimSpace(out.String()) != "3" {
		t.Errorf("exec with stdin: err %v, stdout %q; want 3", err, out.String())
	}

	// A terminal: the size the client set, the input, the exit code.
	out = syncBuffer{}
	sizes := &fixedSize{remotecommand.TerminalSize{Width: 123, Height: 45}}
	inR, inW := io.Pipe()
	defer inW.Close()
	go func() {
		time.Sleep(300 * time.Millisecond) // the size is set as the process starts
		io.WriteString(inW, "go\n")
	}()
	err = stream(ctx(t), e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "read x; stty size; echo got $x; exit 7"}, Stdin: true, Stdout: true, Tty: true}),
		remotecommand.StreamOptions{Stdin: inR, Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
	if exitCode(err) != 7 || !strings.Contains(out.String(), "45 123") || !strings.Contains(out.String(), "got go") {
		t.Errorf("exec with a tty: err %v (exit %d), output %q; want exit 7 and size 45 123", err, exitCode(err), out.String())
	}

	// Errors before any stream: no command, unknown container, a container that is not running.
	if _, err := e.d.Runtime.Exec(ctx(t), &runtimeapi.ExecRequest{ContainerId: id, Stdout: true}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Exec without cmd = %v, want InvalidArgument", err)
	}
	if _, err := e.d.Runtime.Exec(ctx(t), &runtimeapi.ExecRequest{ContainerId: "nope", Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.NotFound {
		t.Errorf("Exec in an unknown container = %v, want NotFound", err)
	}
	created := e.create(t, "created", nil)
	if _, err := e.d.Runtime.Exec(ctx(t), &runtimeapi.ExecRequest{ContainerId: created, Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Exec in a created container = %v, want FailedPrecondition", err)
	}
	if _, err := e.d.Runtime.Attach(ctx(t), &runtimeapi.AttachRequest{ContainerId: created, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Attach to a created container = %v, want FailedPrecondition", err)
	}
}

type fixedSize struct{ size remotecommand.TerminalSize }

func (f *fixedSize) Next() *remotecommand.TerminalSize {
	if f.size.Width == 0 {
		time.Sleep(time.Hour) // one size, then none (the caller's stream ends first)
		return nil
	}
	s := f.size
	f.size = remotecommand.TerminalSize{}
	return &s
}

func TestExecSyncLimits(t *testing.T) {
	e := newContainerEnv(t, "execsync")
	id := e.run(t, "app", nil)

	// A command that outlives its timeout is killed, and nothing of it stays in the container.
	start := time.Now()
	_, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "4711"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("ExecSync past its timeout = %v, want DeadlineExceeded", err)
	}
	t.Logf("timed-out ExecSync returned after %s", time.Since(start))
	if procs := processesWith("sleep\x004711"); len(procs) > 0 {
		t.Errorf("the timed-out exec is still running: %v", procs)
	}

	// 50 MiB of output: the first 16 MiB and a marker.
	start = time.Now()
	resp, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"head", "-c", fmt.Sprint(50 << 20), "/dev/zero"}, Timeout: 60})
	if err != nil {
		t.Fatalf("ExecSync of 50 MiB: %v", err)
	}
	t.Logf("ExecSync of 50 MiB took %s", time.Since(start))
	// What fits in the kubelet's 16 MiB message, ending with the marker.
	if len(resp.Stdout) != runtime.ExecResultBudget || !bytes.HasSuffix(resp.Stdout, []byte(runtime.TruncatedMarker)) || resp.ExitCode != 0 {
		t.Errorf("ExecSync of 50 MiB: %d bytes (suffix %q), exit %d; want %d and the marker", len(resp.Stdout), resp.Stdout[max(0, len(resp.Stdout)-60):], resp.ExitCode, runtime.ExecResultBudget)
	}

	// 100 probes at once.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i%3)}, Timeout: 30})
			switch {
			case err != nil:
				errs <- err
			case string(resp.Stdout) != fmt.Sprintf("%d\n", i) || resp.ExitCode != int32(i%3):
				errs <- fmt.Errorf("probe %d: stdout %q exit %d", i, resp.Stdout, resp.ExitCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAttach(t *testing.T) {
	e := newContainerEnv(t, "attach")
	// A container that counts on stdout and echoes its stdin on stderr.
	id := e.run(t, "counter", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "(i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done) & while read l; do echo \"got $l\" >&2; done; wait"}
		c.Stdin = true
	})
	url := func() string {
		resp, err := e.d.Runtime.Attach(ctx(t), &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		return resp.Url
	}
	// Two clients at once both see the output; input from one reaches the container.
	var out1, out2, err1 syncBuffer
	in1r, in1w := io.Pipe()
	in2r, in2w := io.Pipe()
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() {
		done1 <- stream(ctx(t), url(), remotecommand.StreamOptions{Stdin: in1r, Stdout: &out1, Stderr: &err1})
	}()
	go func() {
		done2 <- stream(ctx(t), url(), remotecommand.StreamOptions{Stdin: in2r, Stdout: &out2, Stderr: io.Discard})
	}()
	waitFor(t, "both clients to see output", func() bool {
		return strings.Count(out1.String(), "line") >= 5 && strings.Count(out2.String(), "line") >= 5
	})
	fmt.Fprintln(in1w, "hello")
	waitFor(t, "the container to echo the input", func() bool { return strings.Contains(err1.String(), "got hello") })

	// Detaching (the client's input ends) returns without stopping the container.
	in1w.Close()
	if err := <-done1; err != nil {
		t.Errorf("first attach ended with %v", err)
	}
	in2w.Close()
	if err := <-done2; err != nil {
		t.Errorf("second attach ended with %v", err)
	}
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after detach: %v", st.State)
	}
	// The log file got the output all along, and keeps getting it.
	logPath := e.logDir + "/counter.log"
	before := len(logEntries(t, logPath))
	waitFor(t, "the log to keep growing after detach", func() bool { return len(logEntries(t, logPath)) > before+5 })
	entries := logEntries(t, logPath)
	for i, en := range entries {
		if want := fmt.Sprintf("line %d", i); en[0] == "stdout" && en[2] != want && !strings.HasPrefix(en[2], "line") {
			t.Fatalf("log entry %d = %v", i, en)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portForward forwards a free local port to port in the pod and returns the local address.
func portForward(t *testing.T, rs runtimeapi.RuntimeServiceClient, pod string, port int) string {
	t.Helper()
	resp, err := rs.PortForward(ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{int32(port)}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	t.Cleanup(func() { close(stop); <-errc })
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward: %v", err)
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("forwarded ports %v: %v", ports, err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
}

func httpGet(t *testing.T, addr string) string {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET through the port-forward: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPortForward(t *testing.T) {
	e := newContainerEnv(t, "portfwd")
	mustPull(t, e.d.Image, nginxRef)
	web := e.run(t, "web", func(c *runtimeapi.ContainerConfig) {
		c.Image.Image, c.Command = nginxRef, nil
	})
	e.waitServing(t, web, 80)
	addr := portForward(t, e.d.Runtime, e.pod, 80)
	var wg sync.WaitGroup
	for range 5 { // several streams at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body string
			waitFor(t, "the web server in the pod", func() bool {
				defer func() { recover() }()
				body = tryGet(addr)
				return body != ""
			})
			if !strings.Contains(body, "Welcome to nginx") {
				t.Errorf("page through the port-forward: %q", body)
			}
		}()
	}
	wg.Wait()

	// Bad requests are refused before any stream.
	if _, err := e.d.Runtime.PortForward(ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: "nope", Port: []int32{80}}); status.Code(err) != codes.NotFound {
		t.Errorf("PortForward to an unknown pod = %v, want NotFound", err)
	}
	if _, err := e.d.Runtime.PortForward(ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{70000}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PortForward to port 70000 = %v, want InvalidArgument", err)
	}
}

// waitServing waits until a server answers on port in the pod: a port-forward to a port nobody
// listens on ends the client's forwarding (kubectl's behaviour since 1.29).
func (e *containerEnv) waitServing(t *testing.T, id string, port int) {
	t.Helper()
	waitFor(t, "the web server in the pod", func() bool {
		resp, err := e.d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"wget", "-q", "-O", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/", port)}, Timeout: 5})
		return err == nil && resp.ExitCode == 0
	})
}

func tryGet(addr string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPortForwardOnTheHostNetwork(t *testing.T) {
	// A server on the node's loopback, reached through a host-network pod.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "node says hi") }))
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	cfg := podConfig("hostnet-pf")
	cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}
	pod := runPod(t, d, cfg)
	addr := portForward(t, d.Runtime, pod, l.Addr().(*net.TCPAddr).Port)
	if got := httpGet(t, addr); got != "node says hi" {
		t.Errorf("through a host-network pod's port-forward: %q", got)
	}
}

// crictl's exec, attach and port-forward against berthd, as an operator runs them.
func TestCrictlStreaming(t *testing.T) {
	e := newContainerEnv(t, "crictl")
	mustPull(t, e.d.Image, nginxRef)
	crictl := tool(t, "crictl")
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(crictl, append([]string{"--runtime-endpoint", e.d.Endpoint(), "--timeout", "20s"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		return string(out), err
	}
	id := e.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		// The answer comes a moment after the input, which has ended by then (stdin_once).
		c.Command = []string{"sh", "-c", "while read l; do sleep 0.3; echo \"echo: $l\"; done"}
		c.Stdin, c.StdinOnce = true, true
	})
	// crictl exits 1 for a failed command and names its exit code.
	if out, err := run("", "exec", id, "sh", "-c", "echo hi; exit 4"); out != "hi\n" || err == nil || !strings.Contains(err.Error(), "exit code 4") {
		t.Errorf("crictl exec: %v\n%q", err, out)
	}
	if out, err := run("a line\n", "exec", "-i", id, "cat"); err != nil || out != "a line\n" {
		t.Errorf("crictl exec -i: %v\n%q", err, out)
	}
	// -it needs a terminal: script(1) gives crictl one.
	out, err := exec.Command("script", "-qec", fmt.Sprintf("%s --runtime-endpoint %s exec -it %s sh -c 'tty; exit 0'", crictl, e.d.Endpoint(), id), "/dev/null").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/dev/pts/") {
		t.Errorf("crictl exec -it: %v\n%s", err, out)
	}
	// attach: the input reaches the container (stdin_once: it then exits), its answer comes back.
	if out, err := run("hello\n", "attach", "-i", id); err != nil || !strings.Contains(out, "echo: hello") {
		t.Errorf("crictl attach: %v\n%s", err, out)
	}
	if st := e.waitExit(t, id); st.ExitCode != 0 {
		t.Errorf("stdin_once container after its input closed: exit %d", st.ExitCode)
	}
	// port-forward to nginx in the pod.
	web := e.run(t, "web", func(c *runtimeapi.ContainerConfig) { c.Image.Image, c.Command = nginxRef, nil })
	e.waitServing(t, web, 80)
	pf := exec.Command(crictl, "--runtime-endpoint", e.d.Endpoint(), "port-forward", e.pod, "18089:80")
	var pfOut syncBuffer
	pf.Stdout, pf.Stderr = &pfOut, &pfOut
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { pf.Process.Kill(); pf.Wait() }()
	var body string
	waitFor(t, "crictl port-forward to serve", func() bool { body = tryGet("127.0.0.1:18089"); return body != "" })
	if !strings.Contains(body, "Welcome to nginx") {
		t.Errorf("through crictl port-forward: %q\n%s", body, pfOut.String())
	}
}

// A server that listens on the pod's IPv6 loopback alone is reached too (it was not: berth
// dialled 127.0.0.1 only).
func TestPortForwardToIPv6Loopback(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	pod := runPod(t, d, podConfig("pf-ipv6"))
	netns := filepath.Join(d.State, "pods", pod, "ns", "net")
	var l net.Listener
	if err := namespace.Do(namespace.Net, netns, func() (err error) {
		l, err = net.Listen("tcp6", "[::1]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pod on ::1") }))
	addr := portForward(t, d.Runtime, pod, l.Addr().(*net.TCPAddr).Port)
	if got := httpGet(t, addr); got != "pod on ::1" {
		t.Errorf("through the port-forward: %q", got)
	}
}
