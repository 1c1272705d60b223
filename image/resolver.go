package image

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
