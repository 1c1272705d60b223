package cri

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRecoverUnaryTurnsAPanicIntoInternal(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	_, err := recoverUnary(log)(context.Background(), nil, info, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "RunPodSandbox") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error = %v, want Internal naming the method and the panic", err)
	}
}

func TestObserveUnaryRecordsLatencyAndErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	observeFn := observeUnary(log, m)
	tests := []struct {
		desc string
		err  error
	}{
		{"success", nil},
		{"not found", status.Error(codes.NotFound, "pod x")},
		{"invalid", status.Error(codes.InvalidArgument, "metadata.name")},
	}
	for _, test := range tests {
		info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/PodSandboxStatus"}
		_, err := observeFn(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, test.err })
		if err != test.err {
			t.Errorf("%s: interceptor changed the error to %v", test.desc, err)
		}
	}
	if n := testutil.CollectAndCount(m.latency); n != 3 {
		t.Errorf("latency series = %d, want 3 (one per code)", n)
	}
	if v := testutil.ToFloat64(m.errors.WithLabelValues("PodSandboxStatus", "NotFound")); v != 1 {
		t.Errorf("NotFound errors = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.errors.WithLabelValues("PodSandboxStatus", "OK")); v != 0 {
		t.Errorf("OK calls counted as errors: %v", v)
	}
}

// A panic in a handler on its own thread is Internal too, with the handler's stack in the log
// and not in the answer.
func TestPanicOnTheHandlersOwnThread(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	chain := func(ctx context.Context, req any) (any, error) {
		return ownThreadUnary()(ctx, req, info, func(context.Context, any) (any, error) { panic("boom") })
	}
	_, err := recoverUnary(log)(context.Background(), nil, info, chain)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "boom") || strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("error = %v, want Internal with the panic and no stack", err)
	}
	if !strings.Contains(logged.String(), "interceptors_test.go") {
		t.Errorf("log has not the handler's stack: %s", logged.String())
	}
}

func TestOwnThreadUnaryPassesResults(t *testing.T) {
	for _, method := range []string{"RunPodSandbox", "ListContainers"} {
		info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/" + method}
		resp, err := ownThreadUnary()(context.Background(), "req", info, func(_ context.Context, req any) (any, error) {
			return req.(string) + "-done", status.Error(codes.NotFound, "x")
		})
		if resp != "req-done" || status.Code(err) != codes.NotFound {
			t.Errorf("%s: %v, %v", method, resp, err)
		}
	}
}
