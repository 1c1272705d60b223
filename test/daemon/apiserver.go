package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// APIServerAddress is where the node e2e suite's API server listens (its fixed default).
const APIServerAddress = "https://127.0.0.1:6443"

// APIServer is an etcd and kube-apiserver for a kubelet of API pods: the ones Kubernetes' node
// e2e suite runs in process (e2e_node.test --run-services-mode, from KubeBinDir), admitting a
// bearer token as system:masters. No scheduler or controllers: pods name their node.
type APIServer struct {
	Dir   string
	Token string

	cmd    *exec.Cmd
	done   chan struct{}
	client *http.Client
}

// StartAPIServer starts the services and waits until the API server answers.
func StartAPIServer() (*APIServer, error) {
	bin := filepath.Join(KubeBinDir(), "e2e_node.test")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no e2e_node.test at %s: run hack/install-node-e2e.sh", bin)
	}
	dir, err := os.MkdirTemp("", "apiserver-")
	if err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	rand.Read(token)
	// No client timeout: requests are bounded by their context (a watch lasts as long as it).
	a := &APIServer{Dir: dir, Token: hex.EncodeToString(token), done: make(chan struct{}), client: &http.Client{
		// The API server serves a certificate it made itself.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback test server
	}}
	log, err := os.Create(filepath.Join(dir, "services.log"))
	if err != nil {
		return nil, err
	}
	// The services write their token file (and etcd its data) in the working directory.
	a.cmd = exec.Command(bin, "--run-services-mode", "--bearer-token="+a.Token, "--host="+APIServerAddress)
	a.cmd.Dir, a.cmd.Stdout, a.cmd.Stderr = dir, log, log
	a.cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := a.cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() { a.cmd.Wait(); log.Close(); close(a.done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-a.done:
			b, _ := os.ReadFile(filepath.Join(dir, "services.log"))
			return a, fmt.Errorf("API server exited: %v\n%s", a.cmd.ProcessState, tail(string(b), 4000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := a.Do(ctx, http.MethodGet, "/api/v1/namespaces/default", nil, nil)
		cancel()
		if err == nil {
			return a, nil
		}
		if time.Now().After(deadline) {
			return a, fmt.Errorf("API server not answering within 2m")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kubeconfig writes a kubeconfig for the API server (token, no TLS verification) to path.
func (a *APIServer) Kubeconfig(path string) error {
	return os.WriteFile(path, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: bench
  user: {token: %q}
contexts:
- name: local
  context: {cluster: local, user: bench}
current-context: local
`, APIServerAddress, a.Token), 0o600)
}

// Do sends a request with body (JSON-encoded unless nil) and decodes the answer into out
// (unless nil).
func (a *APIServer) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := a.Open(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Open sends a request and returns the open response of a 2xx status (a watch streams).
func (a *APIServer) Open(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, APIServerAddress+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return resp, nil
}

// Cleanup stops the services and removes their directory.
func (a *APIServer) Cleanup() {
	if a.cmd != nil && a.cmd.Process != nil {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-a.done
		}
	}
	os.RemoveAll(a.Dir)
}
