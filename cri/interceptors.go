package cri

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-runtime/berth/runtime/thread"
)

// recoverUnary turns a panic in a handler into an Internal error for that call alone, logged with
// its stack, instead of a crashed daemon.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = panicError(log, info.FullMethod, r)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = panicError(log, info.FullMethod, r)
			}
		}()
		return handler(srv, ss)
	}
}

func panicError(log *slog.Logger, method string, r any) error {
	stack := debug.Stack()
	if p, ok := r.(*thread.Panic); ok { // raised on a handler's own thread: its stack is there
		r, stack = p.Value, p.Stack
	}
	log.Error("panic in CRI handler", "method", path.Base(method), "panic", fmt.Sprint(r), "stack", string(stack))
	return status.Errorf(codes.Internal, "%s: internal error: %v", path.Base(method), r)
}

// observeUnary logs each call once (debug when it succeeds, since the kubelet polls several RPCs
// every second; warn when it fails) and records its latency. Request bodies are never logged: they
// can carry registry credentials.
func observeUnary(log *slog.Logger, m *Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		observe(log, m, info.FullMethod, start, err)
		return resp, err
	}
}

func observeStream(log *slog.Logger, m *Metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		observe(log, m, info.FullMethod, start, err)
		return err
	}
}

func observe(log *slog.Logger, m *Metrics, fullMethod string, start time.Time, err error) {
	method := path.Base(fullMethod)
	elapsed := time.Since(start)
	code := status.Code(err)
	m.observe(method, code, elapsed)
	if err != nil {
		level := slog.LevelWarn
		if code == codes.NotFound || code == codes.Unimplemented || code == codes.Canceled {
			// Expected in normal operation (the kubelet asks about objects that are gone).
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "CRI call failed", "method", method, "code", code.String(), "error", status.Convert(err).Message(), "duration", elapsed)
		return
	}
	log.Debug("CRI call", "method", method, "duration", elapsed)
}

// ownThreadMethods are the RPCs that fork and wait (CNI plugins, shims), mount and write files:
// each runs on a thread that ends with it, so that a burst of pods does not leave berthd with
// a thread for every system call that was blocked at its peak (see package thread). The calls
// the kubelet makes every second (lists, statuses, stats) stay on Go's pooled threads.
var ownThreadMethods = map[string]bool{
	"RunPodSandbox": true, "StopPodSandbox": true, "RemovePodSandbox": true,
	"CreateContainer": true, "StartContainer": true, "StopContainer": true, "RemoveContainer": true,
}

func ownThreadUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		if !ownThreadMethods[path.Base(info.FullMethod)] {
			return handler(ctx, req)
		}
		thread.Run(func() { resp, err = handler(ctx, req) })
		return resp, err
	}
}
