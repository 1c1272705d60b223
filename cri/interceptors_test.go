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
