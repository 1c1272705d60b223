package images

import (
	"context"

	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Upstreams are the public registries the mirror stands in for.
var Upstreams = []string{"registry.k8s.io", "gcr.io", "docker.io", "quay.io", "k8s.gcr.io"}

// Registry is an in-process OCI registry on 127.0.0.1. Each upstream's images are kept under
// "<upstream>/<repository>", so one registry mirrors several upstreams without name clashes.
type Registry struct {
	// Addr is host:port.
	Addr string
	// BlobGets counts blob downloads, so tests can check that layers are fetched once.
	BlobGets atomic.Int64

	srv *http.Server
	l   net.Listener
}

// StartRegistry serves an empty registry on 127.0.0.1 (addr "" picks a free port). wrap, if not
// nil, wraps its handler (for tests that need auth or faults).
func StartRegistry(addr string, wrap func(http.Handler) http.Handler) (*Registry, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Registry{Addr: l.Addr().String(), l: l}
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	inner := h
	h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			r.BlobGets.Add(1)
		}
		inner.ServeHTTP(w, req)
	})
	if wrap != nil {
		h = wrap(h)
	}
	r.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(l)
	return r, nil
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// MirrorRef is where the registry keeps the image of the public reference ref.
func (r *Registry) MirrorRef(ref string) (name.Reference, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	upstream := parsed.Context().RegistryStr()
	if upstream == name.DefaultRegistry {
		upstream = "docker.io"
	}
	repo := r.Addr + "/" + upstream + "/" + parsed.Context().RepositoryStr()
	return name.ParseReference(repo+":"+parsed.Identifier(), name.Insecure)
}

// Push uploads every image of the catalog under its mirror reference.
func (r *Registry) Push(ctx context.Context, catalog map[string]v1.Image) error {
	for _, ref := range Refs(catalog) {
		m, err := r.MirrorRef(ref)
		if err != nil {
			return err
		}
		if err := remote.Write(m, catalog[ref], remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return nil
}

// WriteHostsDir writes, for each upstream, a containerd-style hosts.toml in dir that sends pulls
// of that upstream to this registry over plain HTTP. berthd's --registry-config-dir (and
// containerd's config_path) read it.
func (r *Registry) WriteHostsDir(dir string) error { return r.WriteHostsDirAt(dir, r.Addr) }

// WriteHostsDirAt is WriteHostsDir for a runtime that reaches the registry at addr (host:port)
// rather than at its own loopback address: a guest behind qemu's user network, say.
func (r *Registry) WriteHostsDirAt(dir, addr string) error {
	for _, up := range Upstreams {
		d := filepath.Join(dir, up)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		server := "https://" + up
		if up == "docker.io" {
			server = "https://registry-1.docker.io"
		}
		content := fmt.Sprintf("server = %q\n\n[host.\"http://%s/v2/%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n", server, addr, up)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
