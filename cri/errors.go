package cri

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus maps an error from berth's domain (containerd's errdefs inside) to a gRPC status with
// the right code; the message is kept as it is, since it already names the object and the fault.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codeOf(err)
	if code == codes.Unknown {
		// Already a status (made by a handler, or passed through from a gRPC peer).
		if s, ok := status.FromError(err); ok {
			return s.Err()
		}
	}
	return status.Error(code, err.Error())
}

func codeOf(err error) codes.Code {
	switch {
	case errdefs.IsNotFound(err):
		return codes.NotFound
	case errdefs.IsAlreadyExists(err):
		return codes.AlreadyExists
	case errdefs.IsInvalidArgument(err):
		return codes.InvalidArgument
	case errdefs.IsFailedPrecondition(err), errdefs.IsConflict(err):
		return codes.FailedPrecondition
	case errdefs.IsNotImplemented(err):
		return codes.Unimplemented
	case errdefs.IsUnavailable(err):
		return codes.Unavailable
	case errdefs.IsPermissionDenied(err):
		return codes.PermissionDenied
	case errdefs.IsResourceExhausted(err):
		return codes.ResourceExhausted
	case errors.Is(err, context.DeadlineExceeded), errdefs.IsDeadlineExceeded(err):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled), errdefs.IsCanceled(err):
		return codes.Canceled
	}
	return codes.Unknown
}
