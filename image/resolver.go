package image

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pelletier/go-toml/v2"
)

// Auth is the credential a pull request carries (the CRI's AuthConfig).
type Auth struct {
	Username, Password string
	// Auth is base64("username:password").
	Auth          string
	IdentityToken string
	// RegistryToken is a bearer token sent as it is.
	RegistryToken string
}

func (a *Auth) empty() bool {
	return a == nil || (a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "")
}

// credentials returns the user and secret for a registry host: from the request's auth, else from
// the host's credentials.toml in the registry config directory.
func (s *Service) credentials(auth *Auth) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		if auth.empty() {
			var err error
			if auth, err = s.fileCredentials(host); err != nil || auth == nil {
				return "", "", err
			}
		}
		switch {
		case auth.IdentityToken != "":
			return "", auth.IdentityToken, nil
		case auth.Auth != "":
			decoded, err := base64.StdEncoding.DecodeString(auth.Auth)
			if err != nil {
				return "", "", fmt.Errorf("auth for %s is not base64: %w", host, errdefs.ErrInvalidArgument)
			}
			user, pass, ok := strings.Cut(string(decoded), ":")
			if !ok {
				return "", "", fmt.Errorf("auth for %s is not username:password: %w", host, errdefs.ErrInvalidArgument)
			}
			return user, pass, nil
		}
		return auth.Username, auth.Password, nil
	}
}

// fileCredentials reads <registry-config-dir>/<host>/credentials.toml (keys username, password,
// auth, identity_token), for registries whose credentials the operator keeps on the node.
func (s *Service) fileCredentials(host string) (*Auth, error) {
	if s.opts.RegistryConfigDir == "" {
		return nil, nil
	}
	p := filepath.Join(s.opts.RegistryConfigDir, host, "credentials.toml")
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Username      string `toml:"username"`
		Password      string `toml:"password"`
		Auth          string `toml:"auth"`
		IdentityToken string `toml:"identity_token"`
	}
	if err := toml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", p, err, errdefs.ErrInvalidArgument)
	}
	return &Auth{Username: f.Username, Password: f.Password, Auth: f.Auth, IdentityToken: f.IdentityToken}, nil
}

// resolver resolves and fetches through the hosts configured for each registry (mirrors first,
// then the registry itself), counting the bytes it receives into progress.
func (s *Service) resolver(ctx context.Context, auth *Auth, progress *atomic.Int64) remotes.Resolver {
	opts := config.HostOptions{Credentials: s.credentials(auth)}
	if s.opts.RegistryConfigDir != "" {
		opts.HostDir = config.HostDirFromRoot(s.opts.RegistryConfigDir)
	}
	hosts := config.ConfigureHosts(ctx, opts)
	if auth != nil && auth.RegistryToken != "" {
		token := auth.RegistryToken
		base := hosts
		hosts = func(host string) ([]docker.RegistryHost, error) {
			hs, err := base(host)
			for i := range hs {
				if hs[i].Header == nil {
					hs[i].Header = http.Header{}
				}
				hs[i].Header.Set("Authorization", "Bearer "+token)
			}
			return hs, err
		}
	}
	return &countingResolver{Resolver: docker.NewResolver(docker.ResolverOptions{Hosts: hosts}), n: progress}
}

// countingResolver counts the bytes its fetchers read, so a stalled pull can be told apart from
// a slow one.
type countingResolver struct {
	remotes.Resolver
	n *atomic.Int64
}

func (r *countingResolver) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	f, err := r.Resolver.Fetcher(ctx, ref)
	if err != nil {
		return nil, err
	}
	return countingFetcher{f, r.n}, nil
}

type countingFetcher struct {
	remotes.Fetcher
	n *atomic.Int64
}

func (f countingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := f.Fetcher.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &countingReader{rc, f.n}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}
