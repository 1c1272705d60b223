package image

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCredentialsAreForTheirHost(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mirror.local"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mirror.local", "credentials.toml"), []byte("username = \"node\"\npassword = \"file\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Service{opts: Options{RegistryConfigDir: dir}}
	kube := &Auth{Username: "kube", Password: "req", ServerAddress: "registry.example.com"}
	tests := []struct {
		desc  string
		auth  *Auth
		hosts []string // asked in turn, of one credentials function
		want  []string // user per host
	}{
		{desc: "the request's, for its server", auth: kube, hosts: []string{"registry.example.com"}, want: []string{"kube"}},
		{desc: "not for a mirror: the mirror's own file", auth: kube, hosts: []string{"mirror.local"}, want: []string{"node"}},
		{desc: "not for another registry", auth: kube, hosts: []string{"other.example.com"}, want: []string{""}},
		{desc: "no server named: any host (as containerd)", auth: &Auth{Username: "kube"}, hosts: []string{"other.example.com"}, want: []string{"kube"}},
		{desc: "a URL and Docker Hub's names", auth: &Auth{Username: "hub", ServerAddress: "https://index.docker.io/v1/"},
			hosts: []string{"registry-1.docker.io"}, want: []string{"hub"}},
		{desc: "a file's credential stays with its host", auth: nil, hosts: []string{"mirror.local", "other.example.com"}, want: []string{"node", ""}},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			creds := s.credentials(test.auth)
			for i, h := range test.hosts {
				user, _, err := creds(h)
				if err != nil || user != test.want[i] {
					t.Errorf("credentials(%s) = %q, %v; want %q", h, user, err, test.want[i])
				}
			}
		})
	}
}
