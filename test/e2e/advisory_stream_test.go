package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// streamAbuseRounds is how many connections of each kind TestAdvisoryStreamAbuse makes:
// BERTH_STREAM_ABUSE (make security: 1000), else 30 (make e2e).
func streamAbuseRounds() int {
	if n, err := strconv.Atoi(os.Getenv("BERTH_STREAM_ABUSE")); err == nil && n > 0 {
		return n
	}
	return 30
}

// berthdUsage is what berthd holds: goroutines (from its metrics), open files and resident memory.
type berthdUsage struct {
	goroutines, fds int
	rssKiB          int
}

func usageOf(t *testing.T, d *daemon.Daemon, metrics string) berthdUsage {
	t.Helper()
	var u berthdUsage
	if g := scrapeMetrics(t, metrics)["go_goroutines"].GetMetric(); len(g) == 1 {
		u.goroutines = int(g[0].GetGauge().GetValue())
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.Pid()))
	u.fds = len(fds)
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid()))
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKiB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return u
}

// spdyUpgrade connects to a streaming URL and upgrades the connection to SPDY for protocol, as
// a client of the kubelet's streaming protocols does, and returns the raw connection.
func spdyUpgrade(rawURL, protocol string) (net.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\nContent-Length: 0\r\n\r\n", u.Path, u.Host, protocol)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	return conn, nil
}

// spdyControlFrame is a SPDY/3 control frame of type typ with the given declared length and
// payload (which may be shorter than declared: a frame cut off).
func spdyControlFrame(typ uint16, length uint32, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], 0x8003)
	binary.BigEndian.PutUint16(b[2:], typ)
	binary.BigEndian.PutUint32(b[4:], length&0xffffff) // flags 0
	return append(b, payload...)
}

// Streams that end abruptly or carry hostile SPDY frames leave nothing behind in berthd: no
// goroutine, open file or memory, and no process in the container.
//   - containerd's GHSA-2qjp-425j-52j9 and GHSA-m6hq-p25p-ffr2: exec and attach streams whose
//     client went away leaked goroutines (and, for exec, the process).
//   - moby/spdystream's GHSA-pc3f-x583-g7j2: counts and lengths in SPDY frames read without a
//     bound (a SETTINGS frame claiming 2^28 entries allocated gigabytes).
//   - cri-dockerd's issue #106: the streaming server reachable from the network; berth's
//     listens on loopback by default, and its URLs are unguessable and single use.
func TestAdvisoryStreamAbuse(t *testing.T) {
	metrics := freeAddress(t)
	e := newContainerEnv(t, "advisory-streams", "--metrics-address", metrics)
	id := e.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		c.Command = []string{"sh", "-c", "while read l; do :; done"}
		c.Stdin = true
	})
	n := streamAbuseRounds()

	execURL := func(tty bool) string {
		resp, err := e.d.Runtime.Exec(ctx(t), &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"cat"}, Tty: tty, Stdin: true, Stdout: true, Stderr: !tty})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		if u, _ := url.Parse(resp.Url); !strings.HasPrefix(u.Host, "127.0.0.1:") {
			t.Fatalf("the streaming server is on %s, not loopback", u.Host)
		}
		return resp.Url
	}
	attachURL := func() string {
		resp, err := e.d.Runtime.Attach(ctx(t), &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		return resp.Url
	}
	forwardURL := func() string {
		resp, err := e.d.Runtime.PortForward(ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: e.pod, Port: []int32{80}})
		if err != nil {
			t.Fatalf("PortForward: %v", err)
		}
		return resp.Url
	}
	// cut runs a stream of a real client and drops it after a moment, stdin still open.
	cut := func(rawURL string, tty bool) {
		c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		stdin, _ := io.Pipe()
		opts := remotecommand.StreamOptions{Stdin: stdin, Stdout: io.Discard, Tty: tty}
		if !tty {
			opts.Stderr = io.Discard
		}
		stream(c, rawURL, opts)
	}
	hostile := [][]byte{
		spdyControlFrame(4, 4, []byte{0x0f, 0xff, 0xff, 0xff}),              // SETTINGS claiming 2^28 entries
		spdyControlFrame(1, 0xffffff, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0}), // a SYN_STREAM of 16 MiB, cut off
		spdyControlFrame(8, 8, []byte{0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff}),  // HEADERS of a stream that is not there
	}
	garbage := make([]byte, 4096)
	rand.Read(garbage)
	hostile = append(hostile, garbage)
	abuse := func(rawURL, protocol string, i int) {
		conn, err := spdyUpgrade(rawURL, protocol)
		if err != nil {
			t.Fatalf("SPDY upgrade: %v", err)
		}
		conn.Write(hostile[i%len(hostile)])
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		io.Copy(io.Discard, conn)
		conn.Close()
	}

	warm := func() {
		cut(execURL(false), false)
		cut(attachURL(), false)
		abuse(forwardURL(), "portforward.k8s.io", 0)
	}
	warm()
	streamHost := func() string { u, _ := url.Parse(forwardURL()); return u.Host }()
	time.Sleep(2 * time.Second)
	before := usageOf(t, e.d, metrics)
	start := time.Now()
	for i := range n {
		cut(execURL(i%2 == 0), i%2 == 0)
		cut(attachURL(), false)
		abuse(forwardURL(), "portforward.k8s.io", i)
		abuse(execURL(false), "v4.channel.k8s.io", i+1)
		// A made-up token and a used one: refused, nothing started.
		if resp, err := http.Post("http://"+streamHost+"/t/"+strings.Repeat("A", 43), "text/plain", nil); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("a made-up token: %s", resp.Status)
			}
		}
	}
	t.Logf("%d rounds of 4 abused streams in %s", n, time.Since(start).Round(time.Millisecond))

	// No exec left running in the container: its own shell and this ps only.
	cutAt := time.Now()
	var procs []string
	waitFor(t, "the cut execs to end", func() bool {
		procs = nil
		for _, line := range strings.Split(e.exec(t, id, "ps", "-o", "pid,args"), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 1 && f[1] != "ps" {
				procs = append(procs, line)
			}
		}
		return len(procs) == 1
	})
	t.Logf("the cut execs had ended %s after the last", time.Since(cutAt).Round(time.Millisecond))
	// A connection whose streams never came is closed by the streaming library after its
	// stream creation timeout (30 s): the bound of what may be held a while.
	var after berthdUsage
	settled := false
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		after = usageOf(t, e.d, metrics)
		if after.goroutines <= before.goroutines+10 && after.fds <= before.fds+5 {
			settled = true
			break
		}
	}
	t.Logf("berthd before: %+v; after: %+v, %s after the last stream", before, after, time.Since(cutAt).Round(time.Second))
	if !settled {
		t.Errorf("berthd holds %d goroutines and %d open files after %d abused streams, %d and %d before", after.goroutines, after.fds, 4*n, before.goroutines, before.fds)
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", e.d.Pid()))
		for _, fd := range fds {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", e.d.Pid(), fd.Name()))
			t.Logf("open: %s -> %s", fd.Name(), link)
		}
	}
	if grew := after.rssKiB - before.rssKiB; grew > 64<<10 {
		t.Errorf("berthd's resident memory grew by %d MiB", grew>>10)
	}
	if _, err := os.Stat(filepath.Join(e.d.State, "containers", id, "exec")); err == nil {
		if left, _ := os.ReadDir(filepath.Join(e.d.State, "containers", id, "exec")); len(left) > 0 {
			t.Errorf("%d exec FIFO directories left", len(left))
		}
	}
}
