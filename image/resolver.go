package image

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
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
	// ServerAddress is the registry the credential is for ("registry.example.com:5000" or a
	// URL such as "https://index.docker.io/v1/"); empty: whichever registry the pull asks.
	ServerAddress string
}

// dockerHub are the names of Docker Hub's registry.
var dockerHub = []string{"docker.io", "index.docker.io", "registry-1.docker.io"}

// registryHost reduces a registry address or URL to its host[:port], Docker Hub's names to one.
func registryHost(addr string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	addr, _, _ = strings.Cut(addr, "/")
	addr = strings.ToLower(addr)
	if slices.Contains(dockerHub, addr) {
		return "docker.io"
	}
	return addr
}

// forHost reports whether the credential may be sent to host: it names no server, or host is
// the server it names. A mirror or another registry never gets the credential of the one it
// stands in for (as containerd scopes AuthConfig by server_address).
func (a *Auth) forHost(host string) bool {
	return a.ServerAddress == "" || registryHost(a.ServerAddress) == registryHost(host)
}

func (a *Auth) empty() bool {
	return a == nil || (a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == "")
}

// credentials returns the user and secret for a registry host: from the request's auth, else from
// the host's credentials.toml in the registry config directory.
func (s *Service) credentials(auth *Auth) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		auth := auth // this host's: a file's credential must not stay for the next host asked
		if auth.empty() || !auth.forHost(host) {
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
