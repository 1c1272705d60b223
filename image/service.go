package image

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options configure a Service.
type Options struct {
	// RegistryConfigDir holds a hosts.toml directory per registry (containerd's layout).
	RegistryConfigDir string
	// Snapshotter unpacks pulled images; "overlayfs" by default.
	Snapshotter string
	// ProgressTimeout cancels a pull that has received no bytes for this long; 1 minute by default.
	ProgressTimeout time.Duration
	// Logger receives pull results.
	Logger *slog.Logger
	// Metrics, when not nil, record pulls.
	Metrics *Metrics
}

// Image is one image as the CRI sees it: the config digest is its id, and every containerd image
// record that leads to that config is one of its names.
type Image struct {
	ID          digest.Digest
	RepoTags    []string
	RepoDigests []string
	// Size is the size of the image's content (manifest, config and compressed layers).
	Size uint64
	// Config is the image's OCI config.
	Config ocispec.Image
	// Annotations are its manifest's, with those of the index it was reached through; Layers
	// its manifest's layers.
	Annotations map[string]string
	Layers      []ocispec.Descriptor
	// Pinned images are never garbage-collected by the kubelet.
	Pinned bool
	// records are the containerd image records that name this image, the id record included.
	records []string
}

// Record names a containerd image record of img: its id record when it has one (a pull through
// berth makes it), else the first of its others (an image imported with ctr, as `kind load`
// does, has only its tags).
func (img *Image) Record() string {
	for _, r := range img.records {
		if r == img.ID.String() {
			return r
		}
	}
	if len(img.records) > 0 {
		return img.records[0]
	}
	return img.ID.String()
}

// Service pulls, lists, describes and removes images in berth's containerd namespace. It is safe
// for concurrent use.
type Service struct {
	client *containerd.Client
	opts   Options

	pulls flights
	usage usageCache

	mu    sync.Mutex
	facts map[digest.Digest]*facts // by manifest (or index) digest; content is immutable
}

// facts are what berth reads once about an image target: its config and size.
type facts struct {
	configDigest digest.Digest
	config       ocispec.Image
	size         uint64
	annotations  map[string]string
	layers       []ocispec.Descriptor
}

// image is the Image these facts describe (without its names).
func (f *facts) image() *Image {
	return &Image{ID: f.configDigest, Size: f.size, Config: f.config, Annotations: f.annotations, Layers: f.layers}
}

// pinnedLabel marks an image record the kubelet must not garbage-collect.
const pinnedLabel = "io.berth.image.pinned"

// New returns a Service over client.
func New(client *containerd.Client, opts Options) *Service {
	if opts.Snapshotter == "" {
		opts.Snapshotter = "overlayfs"
	}
	if opts.ProgressTimeout == 0 {
		opts.ProgressTimeout = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{client: client, opts: opts, facts: map[digest.Digest]*facts{}}
}

// List returns every image, or with filter set only the image that filter (an id, tag or digest
// reference) names.
func (s *Service) List(ctx context.Context, filter string) ([]*Image, error) {
	if filter != "" {
		img, err := s.Get(ctx, filter)
		if errdefs.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []*Image{img}, nil
	}
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(all))
	for _, img := range all {
		out = append(out, img)
	}
	return out, nil
}

// Get returns the image ref names: an id ("sha256:…" or its hex), a tag or a digest reference,
// short or full. An image that is not there is errdefs.ErrNotFound.
func (s *Service) Get(ctx context.Context, ref string) (*Image, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	if id, ok := asID(ref); ok {
		if img, ok := all[id]; ok {
			return img, nil
		}
		return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	named, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	for _, img := range all {
		for _, r := range img.records {
			if r == named.String() {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// Lookup is Get for a container: the image ref names, from the one record it names, without
// the image's other names (RepoTags and RepoDigests are left empty; Record is that record), so
// that creating a container does not list every image of the node. A ref with no record of its
// own (a short or unusual id, a record whose content is gone) takes Get's way.
func (s *Service) Lookup(ctx context.Context, ref string) (*Image, error) {
	var name string
	if id, ok := asID(ref); ok {
		name = id.String()
	} else {
		named, err := Normalize(ref)
		if err != nil {
			return nil, err
		}
		name = named.String()
	}
	rec, err := s.client.ImageService().Get(ctx, name)
	if err != nil {
		return s.Get(ctx, ref)
	}
	f, err := s.factsOf(ctx, rec.Target)
	if err != nil {
		return s.Get(ctx, ref)
	}
	img := f.image()
	img.Pinned, img.records = rec.Labels[pinnedLabel] == "pinned", []string{rec.Name}
	return img, nil
}

// all groups containerd's image records by the config they lead to.
func (s *Service) all(ctx context.Context) (map[digest.Digest]*Image, error) {
	records, err := s.client.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := map[digest.Digest]*Image{}
	for _, rec := range records {
		f, err := s.factsOf(ctx, rec.Target)
		if err != nil {
			// A record whose content is gone (a pull cut short) is not an image.
			s.opts.Logger.Debug("skipping image record", "image", rec.Name, "error", err)
			continue
		}
		img, ok := out[f.configDigest]
		if !ok {
			img = f.image()
			out[f.configDigest] = img
		}
		img.records = append(img.records, rec.Name)
		if rec.Labels[pinnedLabel] == "pinned" {
			img.Pinned = true
		}
	}
	for _, img := range out {
		img.RepoTags, img.RepoDigests = names(img.ID, img.records)
	}
	return out, nil
}

// factsOf reads (once) the config and size behind an image target.
func (s *Service) factsOf(ctx context.Context, target ocispec.Descriptor) (*facts, error) {
	s.mu.Lock()
	f, ok := s.facts[target.Digest]
	s.mu.Unlock()
	if ok {
		return f, nil
	}
	store := s.client.ContentStore()
	platform := platforms.Default()
	manifest, err := images.Manifest(ctx, store, target, platform)
	if err != nil {
		return nil, err
	}
	blob, err := readBlob(ctx, store, manifest.Config)
	if err != nil {
		return nil, err
	}
	f = &facts{configDigest: manifest.Config.Digest, layers: manifest.Layers, annotations: map[string]string{}}
	if err := json.Unmarshal(blob, &f.config); err != nil {
		return nil, fmt.Errorf("image config %s: %w", manifest.Config.Digest, err)
	}
	if images.IsIndexType(target.MediaType) {
		var index ocispec.Index
		if b, err := readBlob(ctx, store, target); err == nil && json.Unmarshal(b, &index) == nil {
			maps.Copy(f.annotations, index.Annotations)
		}
	}
	maps.Copy(f.annotations, manifest.Annotations)
	f.size = uint64(target.Size + manifest.Config.Size)
	for _, l := range manifest.Layers {
		f.size += uint64(l.Size)
	}
	s.mu.Lock()
	s.facts[target.Digest] = f
	s.mu.Unlock()
	return f, nil
}
