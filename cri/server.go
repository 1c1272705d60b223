// Package cri is berth's gRPC surface: it serves the CRI v1 RuntimeService and ImageService,
// validates requests, translates them to berth's domain, and maps errors to gRPC codes. It holds
// no business logic.
package cri

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxMsgSize matches the kubelet's CRI client limit, so that large List answers get through.
const maxMsgSize = 16 * 1024 * 1024

// Server serves CRI on a unix socket.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	log    *slog.Logger
}

// The services the health service reports on, besides the server as a whole ("").
var healthServices = []string{"", "runtime.v1.RuntimeService", "runtime.v1.ImageService"}

// NewServer returns a server for the given services; interceptors log, recover from panics and
// record metrics for every call.
func NewServer(rs runtimeapi.RuntimeServiceServer, is runtimeapi.ImageServiceServer, log *slog.Logger, m *Metrics) *Server {
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(maxMsgSize),
		grpc.MaxSendMsgSize(maxMsgSize),
		grpc.ChainUnaryInterceptor(recoverUnary(log), observeUnary(log, m), ownThreadUnary()),
		grpc.ChainStreamInterceptor(recoverStream(log), observeStream(log, m)),
	)
	runtimeapi.RegisterRuntimeServiceServer(g, rs)
	runtimeapi.RegisterImageServiceServer(g, is)
	// gRPC's standard health service (grpc.health.v1.Health, what grpc-health-probe and
	// load balancers ask): SERVING while the CRI is served, NOT_SERVING once it is stopping.
	hs := health.NewServer()
	for _, svc := range healthServices {
		hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(g, hs)
	return &Server{grpc: g, health: hs, log: log}
}

// Listen opens the unix socket at path, readable and writable by root only. A stale socket left
// by a berthd that died is replaced; a socket another live server answers on is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another server is answering there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	// Create the socket with no access for anyone but root from the start, not just after a chmod.
	// The umask is process-wide: Listen is called once, at start-up, before anything else runs.
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve serves on l until Stop. It returns nil after Stop.
func (s *Server) Serve(l net.Listener) error {
	if err := s.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Stop stops accepting calls and waits up to grace for those under way; then it cancels them.
// The socket file is removed.
func (s *Server) Stop(grace time.Duration) {
	s.health.Shutdown() // NOT_SERVING for every service, and it stays so
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		s.grpc.Stop()
		<-done
	}
}
