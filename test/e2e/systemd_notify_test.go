package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// berthd as a Type=notify unit with a watchdog, systemd played by a datagram socket: READY=1
// once the CRI socket answers, WATCHDOG=1 at half the interval while it does, STOPPING=1 at
// SIGTERM; containerd is not given the unit's notification socket; and gRPC's health service
// on the CRI socket says SERVING.
func TestSystemdNotifyAndWatchdog(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(within time.Duration) string {
		select {
		case m := <-msgs:
			return m
		case <-time.After(within):
			return ""
		}
	}

	d, err := daemon.NewDirs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Cleanup)
	d.Env = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	if m := next(10 * time.Second); m != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	for i := 0; i < 3; i++ {
		if m := next(time.Second); m != "WATCHDOG=1" {
			t.Fatalf("notification %d after READY: %q, want WATCHDOG=1 within the 200 ms half-interval", i, m)
		}
	}

	hc, err := daemon.Dial(d.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	for _, svc := range []string{"", "runtime.v1.RuntimeService", "runtime.v1.ImageService"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := healthpb.NewHealthClient(hc).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		cancel()
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}

	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", d.ContainerdPid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_") {
			t.Errorf("containerd was given the unit's %s", kv)
		}
	}

	if err := d.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for m := next(2 * time.Second); m != "STOPPING=1"; m = next(2 * time.Second) {
		if m == "" {
			t.Fatal("no STOPPING=1 at SIGTERM")
		}
	}
}
