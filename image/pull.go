package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// errStalled is the cause of a pull cancelled for making no progress.
var errStalled = errors.New("no progress")

// Pull fetches and unpacks ref and returns the image id (the config digest). Concurrent pulls of
// one reference share one download; a pull that receives nothing for ProgressTimeout is
// cancelled; cancelling ctx stops the download once no other caller waits for it.
func (s *Service) Pull(ctx context.Context, ref string, auth *Auth) (string, error) {
	named, err := Normalize(ref)
	if err != nil {
		return "", err
	}
	return s.pulls.do(ctx, named.String(), func(ctx context.Context) (string, error) {
		return s.pull(ctx, named, auth)
	})
}

func (s *Service) pull(ctx context.Context, named reference.Named, auth *Auth) (string, error) {
	start := time.Now()
	ref := named.String()
	var received atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go s.watchProgress(ctx, cancel, &received)

	var layers atomic.Int32 // the handler runs for several descriptors at once
	img, err := s.client.Pull(ctx, ref,
		containerd.WithResolver(s.resolver(ctx, auth, &received)),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(s.opts.Snapshotter),
		containerd.WithImageHandler(images.HandlerFunc(func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			if images.IsLayerType(desc.MediaType) {
				layers.Add(1)
			}
			return nil, nil
		})),
	)
	if err != nil {
		err = s.pullError(ref, named, ctx, err)
		s.opts.Metrics.pulled(false, received.Load(), time.Since(start))
		return "", err
	}
	id, err := s.name(ctx, named, img)
	if err != nil {
		return "", err
	}
	elapsed := time.Since(start)
	s.opts.Metrics.pulled(true, received.Load(), elapsed)
	s.opts.Logger.Info("pulled image", "image", ref, "id", id, "bytes", received.Load(), "layers", layers.Load(), "seconds", elapsed.Seconds())
	return id, nil
}

// name gives a pulled image the names the CRI finds it by: the reference it was pulled as (done
// by Pull), its repo digest and its id.
func (s *Service) name(ctx context.Context, named reference.Named, img containerd.Image) (string, error) {
	f, err := s.factsOf(ctx, img.Target())
	if err != nil {
		return "", fmt.Errorf("read pulled image %s: %w", named, err)
	}
	names := []string{f.configDigest.String()}
	if dgst, err := reference.WithDigest(reference.TrimNamed(named), img.Target().Digest); err == nil {
		names = append(names, dgst.String())
	}
	for _, n := range names {
		if n == named.String() {
			continue
		}
		rec := images.Image{Name: n, Target: img.Target(), Labels: img.Labels()}
		if _, err := s.client.ImageService().Create(ctx, rec); errdefs.IsAlreadyExists(err) {
			_, err = s.client.ImageService().Update(ctx, rec, "target")
			if err != nil {
				return "", fmt.Errorf("name image %s as %s: %w", named, n, err)
			}
		} else if err != nil {
			return "", fmt.Errorf("name image %s as %s: %w", named, n, err)
		}
	}
	return f.configDigest.String(), nil
}

// watchProgress cancels the pull when no byte has arrived for ProgressTimeout.
func (s *Service) watchProgress(ctx context.Context, cancel context.CancelCauseFunc, received *atomic.Int64) {
	tick := time.NewTicker(min(s.opts.ProgressTimeout/4, time.Second))
	defer tick.Stop()
	last, lastChange := received.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n := received.Load(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= s.opts.ProgressTimeout {
			cancel(fmt.Errorf("%w for %s", errStalled, s.opts.ProgressTimeout))
			return
		}
	}
}

// pullError says what went wrong in terms of the image and its registry, with an errdefs kind
// the CRI layer turns into a code.
func (s *Service) pullError(ref string, named reference.Named, ctx context.Context, err error) error {
	registry := reference.Domain(named)
	cause := context.Cause(ctx)
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(cause, errStalled):
		return fmt.Errorf("pull image %q from %s: cancelled: %v: %w", ref, registry, cause, context.DeadlineExceeded)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("pull image %q from %s: %w", ref, registry, err)
	case errors.Is(err, docker.ErrInvalidAuthorization) || isStatus(err, 401, 403):
		return fmt.Errorf("pull image %q: registry %s refused the credentials: %v: %w", ref, registry, err, errdefs.ErrPermissionDenied)
	case errdefs.IsNotFound(err):
		return fmt.Errorf("pull image %q: repository or tag not found in registry %s: %v: %w", ref, registry, err, errdefs.ErrNotFound)
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return fmt.Errorf("pull image %q: registry %s is unreachable: %v: %w", ref, registry, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("pull image %q from %s: %w", ref, registry, err)
}

// isStatus reports whether err is a registry answer with one of the HTTP status codes.
func isStatus(err error, codes ...int) bool {
	var unexpected remoteerrors.ErrUnexpectedStatus
	if !errors.As(err, &unexpected) {
		return false
	}
	return slices.Contains(codes, unexpected.StatusCode)
}

// readBlob reads a whole (small) blob from the content store.
func readBlob(ctx context.Context, store content.Provider, desc ocispec.Descriptor) ([]byte, error) {
	return content.ReadBlob(ctx, store, desc)
}
