package cri

import (
	"context"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		desc string
		err  error
		want codes.Code
	}{
		{"not found", fmt.Errorf("pod %q: %w", "x", errdefs.ErrNotFound), codes.NotFound},
		{"already exists", fmt.Errorf("name %q reserved: %w", "x", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{"invalid argument", fmt.Errorf("metadata.name: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{"failed precondition", fmt.Errorf("not running: %w", errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{"unavailable", fmt.Errorf("containerd: %w", errdefs.ErrUnavailable), codes.Unavailable},
		{"deadline", fmt.Errorf("pull: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"canceled", fmt.Errorf("pull: %w", context.Canceled), codes.Canceled},
		{"status kept", status.Error(codes.OutOfRange, "x"), codes.OutOfRange},
		{"plain error", fmt.Errorf("boom"), codes.Unknown},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got := toStatus(test.err)
			if c := status.Code(got); c != test.want {
				t.Errorf("toStatus(%v) code = %v, want %v", test.err, c, test.want)
			}
			if msg := status.Convert(got).Message(); msg != status.Convert(test.err).Message() && msg != test.err.Error() {
				t.Errorf("toStatus(%v) message = %q, lost the original", test.err, msg)
			}
		})
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}
