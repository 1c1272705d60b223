package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/containerd/v2/core/transfer"
	transferimage "github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/containerd/v2/core/transfer/registry"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
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

// pull fetches and unpacks through containerd's transfer service, as containerd's own CRI does:
// containerd resolves (with the registry config directory's hosts.toml files), fetches the
// layers concurrently and unpacks each as it arrives, in its own process; berth only answers
// its questions for credentials and reads its progress.
func (s *Service) pull(ctx context.Context, named reference.Named, auth *Auth) (string, error) {
	start := time.Now()
	ref := named.String()
	var received atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go s.watchProgress(ctx, cancel, &received)

	opts := []registry.Opt{registry.WithCredentials(credentialHelper(s.credentials(auth)))}
	if s.opts.RegistryConfigDir != "" {
		opts = append(opts, registry.WithHostDir(s.opts.RegistryConfigDir))
	}
	// The transfer service sends a header to every host of the pull (mirrors too): a bearer
	// token goes only with a request that names the image's own registry as its server.
	if auth != nil && auth.RegistryToken != "" && auth.ServerAddress != "" && auth.forHost(reference.Domain(named)) {
		opts = append(opts, registry.WithHeaders(http.Header{"Authorization": {"Bearer " + auth.RegistryToken}}))
	}
	src, err := registry.NewOCIRegistry(ctx, ref, opts...)
	if err != nil {
		return "", fmt.Errorf("pull image %q: %w", ref, err)
	}
	platform := platforms.DefaultSpec()
	dst := transferimage.NewStore(ref, transferimage.WithPlatforms(platform), transferimage.WithUnpack(platform, s.opts.Snapshotter))
	var p pullProgress
	err = s.client.Transfer(ctx, src, dst, transfer.WithProgress(func(ev transfer.Progress) { p.update(ev, &received) }))
	if err != nil {
		err = s.pullError(ref, named, ctx, err)
		s.opts.Metrics.pulled(false, received.Load(), time.Since(start))
		return "", err
	}
	transferred := time.Since(start)
	img, err := s.client.GetImage(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("pulled image %q: %w", ref, err)
	}
	id, err := s.name(ctx, named, img)
	if err != nil {
		return "", err
	}
	// The transfer service's last progress events (a layer's completion) can miss a fast pull:
	// what was fetched is what the image holds less what the node already had.
	fetched := received.Load()
	if f, err := s.factsOf(ctx, img.Target()); err == nil {
		fetched = max(fetched, int64(f.size)-p.existingBytes())
	}
	elapsed := time.Since(start)
	s.opts.Metrics.pulled(true, fetched, elapsed)
	s.opts.Logger.Info("pulled image", "image", ref, "id", id, "bytes", fetched, "layers", p.layerCount(), "seconds", elapsed.Seconds(), "transfer_seconds", transferred.Seconds())
	return id, nil
}

// credentialHelper answers the transfer service's questions for a registry host's credentials.
type credentialHelper func(host string) (string, string, error)

func (h credentialHelper) GetCredentials(_ context.Context, _, host string) (registry.Credentials, error) {
	user, secret, err := h(host)
	return registry.Credentials{Host: host, Username: user, Secret: secret}, err
}

// pullProgress follows the transfer service's progress events: the bytes fetched so far (into
// received, which the stall watch reads), the layers seen and the blobs the node already had.
type pullProgress struct {
	mu       sync.Mutex
	fetched  map[string]int64
	existing map[string]int64
	layers   map[string]bool
}

func (p *pullProgress) update(ev transfer.Progress, received *atomic.Int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fetched == nil {
		p.fetched, p.existing, p.layers = map[string]int64{}, map[string]int64{}, map[string]bool{}
	}
	if ev.Desc != nil && images.IsLayerType(ev.Desc.MediaType) {
		p.layers[ev.Name] = true
	}
	switch ev.Event {
	case "already exists":
		p.existing[ev.Name] = ev.Total
		return
	case "waiting", "extracting", "extracted":
		// Nothing received (extraction progress counts what is unpacked, not fetched).
		return
	}
	if ev.Progress > p.fetched[ev.Name] {
		received.Add(ev.Progress - p.fetched[ev.Name])
		p.fetched[ev.Name] = ev.Progress
	}
}

func (p *pullProgress) existingBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, size := range p.existing {
		n += size
	}
	return n
}

func (p *pullProgress) layerCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.layers)
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
	case errors.Is(err, docker.ErrInvalidAuthorization) || isStatus(err, 401, 403) || saysAny(err, "401 Unauthorized", "403 Forbidden", docker.ErrInvalidAuthorization.Error()):
		return fmt.Errorf("pull image %q: registry %s refused the credentials: %v: %w", ref, registry, err, errdefs.ErrPermissionDenied)
	case errdefs.IsNotFound(err):
		return fmt.Errorf("pull image %q: repository or tag not found in registry %s: %v: %w", ref, registry, err, errdefs.ErrNotFound)
	case errors.As(err, &dnsErr), errors.As(err, &opErr), saysAny(err, "dial tcp", "no such host", "connection refused", "network is unreachable", "no route to host"):
		return fmt.Errorf("pull image %q: registry %s is unreachable: %v: %w", ref, registry, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("pull image %q from %s: %w", ref, registry, err)
}

// saysAny reports whether err's message has one of the phrases: the transfer service's errors
// reach berth through gRPC as text, without their Go types.
func saysAny(err error, phrases ...string) bool {
	msg := err.Error()
	return slices.ContainsFunc(phrases, func(p string) bool { return strings.Contains(msg, p) })
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
