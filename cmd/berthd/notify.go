package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// notifyReady tells systemd (a Type=notify unit; NOTIFY_SOCKET set) that berthd serves, and
// then, when the unit has a watchdog (WatchdogSec=), pets it at half its interval for as long as
// berthd's own CRI socket answers a health check, so that a berthd that hangs is restarted.
// Without systemd it does nothing. It returns at once; the petting goes on until ctx ends.
func notifyReady(ctx context.Context, conn *grpc.ClientConn, log *slog.Logger) {
	sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
	if err != nil {
		log.Warn("cannot tell systemd that berthd is ready", "error", err)
	}
	if !sent {
		return
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	client := healthpb.NewHealthClient(conn)
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(ctx, interval/2)
			resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
				log.Warn("the CRI socket does not answer its health check; not petting systemd's watchdog", "error", err)
				continue
			}
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}()
}

// notifyStopping tells systemd that berthd is stopping.
func notifyStopping() { daemon.SdNotify(false, daemon.SdNotifyStopping) }
